"""PIN hashes keyed with a secret that is never in the database or its backups: what a station
upgraded from unkeyed hashes, restored onto a new card, or set up by hand must do."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3

import pytest
from click.testing import CliRunner

from station import doctor, pins
from station.cli import cli
from station.radio.virtual.bracelets import cast
from station.storage import backup as bk

from .conftest import wait_until

P = cast()
AMINA = P["amina"].num


def unkeyed(pin: str) -> str:
    """A hash as stations stored them before the PIN key (salted scrypt alone)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_an_upgraded_station_keys_its_old_hashes_and_the_wearers_cancel_still_works(harness):
    h = harness("cancel", "pty", start=False)
    amina = P["amina"]
    with h.db() as c:
        c.execute("UPDATE bracelets SET cancel_pin_hash=?, duress_pin_hash=? WHERE node_num=?",
                  (unkeyed(amina.cancel_pin), unkeyed(amina.duress_pin), AMINA))
    h.start()
    h.settle()
    assert h.rows("SELECT resolution FROM incidents")[0][0] == "safe"
    stored = h.rows("SELECT cancel_pin_hash, duress_pin_hash FROM bracelets WHERE node_num=?", (AMINA,))[0]
    assert all(x.startswith("scrypt-k1$") for x in stored)
    assert h.count("SELECT COUNT(*) FROM events WHERE action='PIN hashes keyed'") == 1


def test_the_pin_key_is_kept_from_other_users_and_the_station_will_not_start_when_it_is_not(tmp_path):
    from tests.conftest import make_config

    from station import at_rest
    cfg = make_config(tmp_path)
    policy = pins.PinPolicy.of(cfg)
    path = pins.configured_key_path(cfg)
    assert oct(path.stat().st_mode & 0o777) == "0o600" and pins.PinPolicy.of(cfg).key == policy.key
    path.chmod(0o644)
    with pytest.raises(at_rest.ExposedFiles, match="pin.key"):
        at_rest.refuse_exposed(cfg)


def test_a_damaged_pin_key_is_named_not_silently_replaced(tmp_path):
    path = tmp_path / "pin.key"
    path.write_text("not a key at all\n")
    with pytest.raises(pins.PinError, match="damaged"):
        pins.PinKey.load(path)
    assert path.read_text() == "not a key at all\n"


def test_a_restore_onto_a_new_card_without_the_old_pin_key_says_which_pins_to_set_again(harness, tmp_path, age_key):
    """The old card died; the office restores last night's backup onto a new one. The PIN key was
    not in the backup (that is the point), so the wearers' PINs can no longer be checked: restore,
    doctor and the daemon say so, and `station bracelets pins` mends it."""
    identity, recipient = age_key
    h = harness("idle", "pty")
    made = bk.backup(h.cfg.database_path, tmp_path / "usb", keep=1, encrypt_to=[recipient])
    h.stop()
    new = tmp_path / "new-card"
    new.mkdir()
    cfg = new / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{new / "station.db"}"\n[gpio]\nenabled = false\n')
    cfg.chmod(0o640)
    out = CliRunner().invoke(cli, ["--config", str(cfg), "restore", str(made), "--yes", "--identity", str(identity)])
    assert out.exit_code == 0, out.output
    assert "were set on a station with another PIN key" in out.output and "station bracelets pins" in out.output
    check = {c.name: c for c in doctor.run(str(cfg))}["PIN key"]
    assert check.status == doctor.FAIL and "station bracelets pins NODE" in check.remedy
    for b in ("amina", "bashir", "chen"):
        person = P[b]
        done = CliRunner().invoke(cli, ["--config", str(cfg), "bracelets", "pins", f"!{person.num:08x}",
                                        "--pins-stdin"], input=f"{person.cancel_pin}\n{person.duress_pin}\n")
        assert done.exit_code == 0, done.output
    assert {c.name: c for c in doctor.run(str(cfg))}["PIN key"].status == doctor.OK


def test_a_cancel_checked_with_another_stations_key_never_resolves(harness):
    """The PINs were set with a key this station does not have: a wearer's SAFE does nothing (and
    says so in the event log) rather than matching by chance or by a default."""
    h = harness("cancel", "pty", start=False)
    other = pins.PinPolicy(pins.PinKey(os.urandom(32)))
    amina = P["amina"]
    with h.db() as c:
        c.execute("UPDATE bracelets SET cancel_pin_hash=?, duress_pin_hash=? WHERE node_num=?",
                  (*other.hash_pair(amina.cancel_pin, amina.duress_pin), AMINA))
    h.start()
    h.settle()
    wait_until(lambda: h.count("SELECT COUNT(*) FROM events WHERE action='cancel rejected'") == 1,
               what="the cancel to be refused")
    assert h.rows("SELECT state FROM incidents")[0][0] == "open"


def test_the_pin_key_is_never_part_of_a_backup(harness, tmp_path):
    h = harness("idle", "pty")
    key = pins.configured_key_path(h.cfg).read_text().strip()
    made = bk.backup(h.cfg.database_path, tmp_path / "usb", keep=1, encrypt_to=[])
    with sqlite3.connect(made) as c:
        dump = "\n".join(c.iterdump())
    assert key not in dump and base64.b64decode(key).hex() not in dump
