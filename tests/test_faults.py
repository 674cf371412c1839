"""Faults an unattended station meets, against the daemon on the virtual radio: a full disk, a
database another process keeps locked, a relay credential that is missing. Each asserts what the
wearer and the operator get: every alert stored and receipted, the room alarm on, the right line
in status and doctor."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from station import doctor, queries
from station.cli import cli
from station.radio.virtual.bracelets import cast
from station.storage import db as dbmod

from .conftest import wait_until

P = cast()
AMINA, BASHIR = P["amina"].num, P["bashir"].num


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB file system of its own for the database (root only, as in CI)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the full-disk tests need root to mount a tmpfs")
        pytest.skip("needs root to mount a small file system")
    where = tmp_path / "card"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)], check=True)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Every free byte of the file system taken."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def config_file(h, tmp_path) -> str:
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[storage]\ndatabase = "{h.cfg.database_path}"\n[gpio]\nenabled = false\n')
    cfg.chmod(0o640)
    return str(cfg)


def status_of(h) -> dict:
    return queries.status(dbmod.connect(h.cfg.database_path, create=False))


@pytest.mark.slow          # waits for the writer's retries and a restart, in real time
def test_alerts_that_arrive_on_a_full_disk_ring_are_receipted_and_survive_a_restart(harness, small_disk, tmp_path):
    h = harness("idle", "pty", storage={"database": str(small_disk / "station.db")})
    filler = fill(small_disk)
    h.sim.stage.press("amina")
    h.sim.stage.press("bashir")
    for i in range(30):
        h.sim.radio.emit_packet(P["chen"].position(14.6 + i * 1e-4, -17.4))
    station = h.station
    wait_until(lambda: station.writer.unavailable is not None, 15, what="the database to refuse changes")
    wait_until(lambda: station.indicators.level == "open", 10, what="the room alarm")
    # Amina's receipt leaves from memory; the radio delivers it.
    wait_until(lambda: "Alert received by the base station" in h.sim.stage.amina.texts_received(), 20,
               what="her receipt")
    wait_until(lambda: (status_of(h).get("database") or {}).get("state") == "unavailable", 10,
               what="the status to say so")
    st = status_of(h)
    assert st["daemon_running"] and "disk full" in st["database"]["why"]
    check = {c.name: c for c in doctor.run(config_file(h, tmp_path))}["daemon"]
    assert check.status == doctor.FAIL and "do NOT restart" in check.remedy
    out = CliRunner().invoke(cli, ["--config", config_file(h, tmp_path), "status"]).output
    assert "UNAVAILABLE to the daemon" in out and "disk full" in out
    # An operator restarts it anyway (or the power blips): the spool keeps what the radio gave.
    h.station.stop()
    h.station = None
    filler.unlink()
    h.start(play=False)

    # (A "disk I/O error" here was the old run's writer, still alive, emptying its closed spool
    # through a descriptor number the new run had reused: tests/test_storage.py.)
    wait_until(lambda: h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (P["chen"].num,)) == 30, 20,
               what="the spool replayed")
    h.station.writer.call(lambda db: None)
    got = {r[0]: r[1] for r in h.rows("SELECT node_num, trust FROM incidents")}
    assert got == {AMINA: "registered", BASHIR: "registered"}
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (P["chen"].num,)) == 30
    # Each press once: the radio's own replay after the reconnect is recognised as the same packets.
    assert [r[0] for r in h.rows("SELECT press_count FROM incidents")] == [1, 1]


@pytest.mark.slow          # the lock is held for seconds, as in the field
def test_a_database_locked_by_another_process_still_rings_receipts_and_catches_up(harness, tmp_path):
    h = harness("idle", "pty")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(h.cfg.database_path)!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        h.sim.stage.press("amina")
        station = h.station
        wait_until(lambda: station.writer.unavailable is not None, 30, what="the writer to find the lock")
        assert f"pid {holder.pid}" in station.writer.unavailable[0]
        wait_until(lambda: station.indicators.level == "open", 10, what="the room alarm")
        wait_until(lambda: "Alert received by the base station" in h.sim.stage.amina.texts_received(), 20,
                   what="her receipt, from memory")
        wait_until(lambda: (status_of(h).get("database") or {}).get("state") == "unavailable", 10,
                   what="the status")
        assert f"pid {holder.pid}" in status_of(h)["database"]["why"]
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)
    h.settle()
    wait_until(lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state='delivered'") == 1, 20,
               what="her receipt recorded as delivered")
    [(state, attempts)] = h.rows("SELECT state, attempts FROM receipts")
    assert (state, attempts) == ("delivered", 1)          # the one sent from memory, acknowledged
    assert [tuple(r) for r in h.rows("SELECT node_num, state FROM incidents")] == [(AMINA, "open")]
    assert her_texts(h).count("Alert received by the base station") == 1        # never twice


def her_texts(h) -> list[str]:
    return h.sim.stage.amina.texts_received()


def test_a_missing_relay_credential_leaves_the_radio_the_alarm_and_the_console_working(harness, tmp_path):
    h = harness("sos", "pty", start=False)
    h.cfg = h.cfg.with_overrides(destinations=[{
        "name": "ngo-mastodon", "kind": "mastodon", "api_base_url": "https://mastodon.invalid",
        "access_token_file": str(tmp_path / "missing-token")}])
    h.start()
    h.settle()
    assert h.count("SELECT COUNT(*) FROM incidents") == 1 and h.station.indicators.level == "open"
    wait_until(lambda: (status_of(h).get("relay") or {}).get("errors"), 10, what="the relay's status")
    assert "missing-token does not exist" in status_of(h)["relay"]["errors"]["ngo-mastodon"]
    cfg = tmp_path / "with-relay.toml"
    cfg.write_text(f'[storage]\ndatabase = "{h.cfg.database_path}"\n[gpio]\nenabled = false\n'
                   f'[[destinations]]\nname = "ngo-mastodon"\nkind = "mastodon"\n'
                   f'api_base_url = "https://mastodon.invalid"\naccess_token_file = "{tmp_path / "missing-token"}"\n')
    cfg.chmod(0o640)
    check = {c.name: c for c in doctor.run(str(cfg))}["relay"]
    assert check.status == doctor.FAIL and "the radio, the alarm and the console are not affected" in check.message
    out = CliRunner().invoke(cli, ["--config", str(cfg), "status"]).output
    assert "ngo-mastodon UNUSABLE" in out


def test_sighup_reloads_the_destinations_and_log_level_and_the_daemon_lives_on(tmp_path):
    """`systemctl reload station` (or the SSH session that started it ending): the mended
    credential takes effect, the log level changes, and what needs a restart is named."""
    import signal
    import threading

    from station.radio.sim import SimRadio
    radio = SimRadio("idle", speed=0, pty=str(tmp_path / "radio")).start()
    token = tmp_path / "token"
    cfg = tmp_path / "station.toml"
    base = (f'[radio]\nport = "{radio.port}"\n[storage]\ndatabase = "{tmp_path / "station.db"}"\n'
            '[gpio]\nenabled = false\n')
    dest = ('[[destinations]]\nname = "m"\nkind = "mastodon"\napi_base_url = "http://127.0.0.1:9"\n'
            f'access_token_file = "{token}"\n')
    cfg.write_text(base + '[log]\nlevel = "INFO"\n' + dest)
    cfg.chmod(0o640)
    proc = subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(x) for x in proc.stdout], daemon=True).start()
    try:
        wait_until(lambda: any("radio.connected" in x for x in lines), 30, what="the station to start")
        assert any("relay.destination_unusable" in x for x in lines)
        token.write_text("a-token\n")
        token.chmod(0o600)
        # The log level (live) and the fold window (only at a restart) change too.
        cfg.write_text(base + '[alerts]\nfold_window_s = 60\n[log]\nlevel = "WARNING"\n' + dest)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any("config.reloaded" in x for x in lines), 15, what="the reload")
        line = next(x for x in lines if "config.reloaded" in x)
        assert "destinations" in line and "log" in line and "restart_needed=alerts" in line
        assert proc.poll() is None, "the daemon died of SIGHUP"
        assert not any("relay.destination_unusable" in x for x in lines[lines.index(line):])
    finally:
        proc.terminate()
        proc.wait(20)
        radio.stop()
    assert proc.returncode == 0


def test_a_press_replayed_from_the_spool_before_the_radio_answers_is_judged_on_the_office_channel(tmp_path):
    """At start the spool's packets are stored before the radio has said anything (on a slow Pi the
    writer gets there first): they are judged with what the radio said at the last run, so Amina's
    press on the office channel is hers, not "unverified", and a DM to another node stays theirs."""
    from station.daemon import Station
    from station.radio.info import Channel, RadioInfo
    from tests.conftest import make_config
    s = Station(make_config(tmp_path))
    assert s._own_node() is None and s._office_channel(0) is False          # nothing known: nothing assumed
    s._last_radio = RadioInfo(node="!5a7a7001", channels=[
        Channel(index=0, role="PRIMARY", name="Kibera", public=False, precision_bits=32, secret=True)])
    assert s._own_node() == 0x5A7A7001 and s._office_channel(0) and not s._office_channel(1)


def test_a_database_that_cannot_be_read_when_the_radio_connects_is_logged_not_a_dead_thread(harness, caplog):
    """The keys the radio is given at each connection come from the database; when it cannot be
    read (a full card gave "disk I/O error"), the operator reads why in the log, and nothing dies."""
    h = harness("idle", "pty")

    def unreadable():
        raise sqlite3.OperationalError("disk I/O error")
    h.station.keeper.load_bracelets = unreadable
    h.station._sync_radio(h.station.link.radio_info)
    assert "the bracelets' keys were not given to the radio: disk I/O error" in caplog.text
    h.sim.stage.press("amina")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents WHERE node_num=?", (AMINA,)) == 1, 15,
               what="her alert, the station still running")
