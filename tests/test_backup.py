"""Online backups while the daemon writes, pruning, verification, and restore."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading

import pytest
from click.testing import CliRunner

from station.cli import cli
from station.storage import backup as bk
from station.storage import records
from station.storage.writer import Writer


def count(path) -> int:
    with sqlite3.connect(path) as c:
        return c.execute("SELECT COUNT(*) FROM rejects").fetchone()[0]


def test_backup_while_the_writer_keeps_writing_is_whole_and_verified(tmp_path):
    w = Writer(tmp_path / "s.db").start()
    stop = threading.Event()

    def keep_writing():
        i = 0
        while not stop.is_set():
            w.call(lambda db, i=i: [records.insert_reject(db, float(i), "test", "x", "y" * 200) for _ in range(50)])
            i += 1
    t = threading.Thread(target=keep_writing)
    t.start()
    try:
        made = bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3, encrypt_to=[])
    finally:
        stop.set()
        t.join()
        w.stop()
    with sqlite3.connect(made) as c:
        assert c.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert c.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] % 50 == 0   # whole transactions only
    assert not list((tmp_path / "usb").glob("*.partial"))


def test_only_the_newest_backups_are_kept(tmp_path):
    Writer(tmp_path / "s.db").stop()
    for day in range(1, 6):
        bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3, now=dt.datetime(2026, 11, day, tzinfo=dt.timezone.utc),
                  encrypt_to=[])
    names = [p.name for p in bk.backups(tmp_path / "usb")]
    assert names == ["station-20261105T000000Z.db", "station-20261104T000000Z.db", "station-20261103T000000Z.db"]


def test_a_months_of_nightly_backups_leave_only_whole_backups_on_the_stick(tmp_path):
    """An office that checks its USB stick finds the backups and nothing else: no -wal, -shm or
    half-written copy, even after a backup was cut short by a power cut."""
    Writer(tmp_path / "s.db").stop()
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "station-20261030T000000Z.partial").write_bytes(b"cut short")
    (usb / "station-20261030T000000Z.partial-wal").write_bytes(b"")
    for day in range(1, 6):
        made = bk.backup(tmp_path / "s.db", usb, keep=3, now=dt.datetime(2026, 11, day, tzinfo=dt.timezone.utc),
                  encrypt_to=[])
        assert count(made) == 0          # each one opens (and is opened by its own check) cleanly
    assert sorted(p.name for p in usb.iterdir()) == [
        "station-20261103T000000Z.db", "station-20261104T000000Z.db", "station-20261105T000000Z.db"]


def test_restore_brings_back_the_backup_and_keeps_the_current_database(tmp_path):
    w = Writer(tmp_path / "s.db").start()
    w.call(lambda db: records.insert_reject(db, 1.0, "test", "before backup"))
    made = bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=2, encrypt_to=[])
    w.call(lambda db: records.insert_reject(db, 2.0, "test", "after backup"))
    w.stop()
    kept = bk.restore(made, tmp_path / "s.db")
    assert count(tmp_path / "s.db") == 1 and count(kept) == 2


def test_a_damaged_backup_is_refused(tmp_path):
    bad = tmp_path / "station-x.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)
    with pytest.raises(bk.BackupError):
        bk.restore(bad, tmp_path / "s.db")


def test_backup_and_restore_commands(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n[backup]\ndir = "{tmp_path / "usb"}"\nkeep = 2\n'
                   'plaintext = true\n')
    w = Writer(tmp_path / "s.db").start()
    w.call(lambda db: records.insert_reject(db, 1.0, "test", "x"))
    w.stop()
    out = CliRunner().invoke(cli, ["--config", str(cfg), "backup"])
    assert out.exit_code == 0 and "written and verified" in out.output
    made = bk.backups(tmp_path / "usb")[0]
    out = CliRunner().invoke(cli, ["--config", str(cfg), "restore", str(made), "--yes"])
    assert out.exit_code == 0 and "previous database is kept" in out.output
    none = tmp_path / "none.toml"
    none.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n')
    out = CliRunner().invoke(cli, ["--config", str(none), "backup"])
    assert out.exit_code == 1 and "no backup folder" in out.output


# ---- Sealed backups: the key that opens them is kept off the station ------------------------------

def _station_with_a_wearer(tmp_path):
    """A database holding what a seizer wants: a wearer's real name and her track."""
    w = Writer(tmp_path / "s.db").start()
    w.call(lambda db: db.execute(
        "INSERT INTO bracelets (node_num, label, added_at, real_name) VALUES (1, 'Amina D.', 0, 'Amina Diallo')"))
    w.call(lambda db: db.execute("INSERT INTO positions (node_num, received_at, lat, lon) VALUES (1, 0, 14.6937, -17.4441)"))
    w.stop()


def test_a_seized_backup_stick_holds_nothing_readable(tmp_path, age_key):
    """Someone takes the USB stick (or the whole station, which holds only the public key): the
    backup is an age file, not a database, and neither the name nor anything else is in clear."""
    identity, recipient = age_key
    _station_with_a_wearer(tmp_path)
    made = bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3, encrypt_to=[recipient])
    assert made.name.endswith(".db.age") and sorted(p.name for p in (tmp_path / "usb").iterdir()) == [made.name]
    data = made.read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n")
    assert b"SQLite format 3" not in data and b"Amina" not in data and b"bracelets" not in data
    with pytest.raises(sqlite3.DatabaseError):
        with sqlite3.connect(made) as c:
            c.execute("SELECT * FROM bracelets").fetchall()
    # The plain snapshot never stays anywhere: not on the stick, not beside the database.
    assert not [p for p in (tmp_path / bk.WORK).iterdir() if p.name != "lock"]


def test_the_office_restores_a_sealed_backup_with_the_key_it_kept(tmp_path, age_key):
    identity, recipient = age_key
    _station_with_a_wearer(tmp_path)
    made = bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3, encrypt_to=[recipient])
    (tmp_path / "new-card").mkdir()
    bk.restore(made, tmp_path / "new-card" / "s.db", identity)
    with sqlite3.connect(tmp_path / "new-card" / "s.db") as c:
        assert c.execute("SELECT real_name FROM bracelets").fetchone()[0] == "Amina Diallo"
        assert c.execute("SELECT lat FROM positions").fetchone()[0] == 14.6937


def test_without_the_key_or_with_another_one_nothing_is_restored(tmp_path, age_key):
    from station.storage import age
    identity, recipient = age_key
    _station_with_a_wearer(tmp_path)
    made = bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3, encrypt_to=[recipient])
    target = tmp_path / "other" / "s.db"
    with pytest.raises(bk.BackupError, match="encrypted: give the key kept off the station"):
        bk.restore(made, target)
    stranger = age.keygen(tmp_path / "office-safe" / "someone-else.key") and tmp_path / "office-safe" / "someone-else.key"
    with pytest.raises(bk.BackupError, match="not restored"):
        bk.restore(made, target, stranger)
    assert not target.exists() or count(target) == 0


def test_the_backup_command_refuses_to_write_readable_copies_unless_told(tmp_path, age_key):
    identity, recipient = age_key
    Writer(tmp_path / "s.db").stop()
    cfg = tmp_path / "station.toml"
    base = f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n[backup]\ndir = "{tmp_path / "usb"}"\n'
    cfg.write_text(base)
    out = CliRunner().invoke(cli, ["--config", str(cfg), "backup"])
    assert out.exit_code == 1 and "station backup-keygen" in out.output and not (tmp_path / "usb").exists()
    cfg.write_text(base + f'recipients = ["{recipient}"]\n')
    out = CliRunner().invoke(cli, ["--config", str(cfg), "backup"])
    assert out.exit_code == 0 and "encrypted to 1 key" in out.output
    made = bk.backups(tmp_path / "usb")[0]
    out = CliRunner().invoke(cli, ["--config", str(cfg), "restore", str(made), "--yes"])
    assert out.exit_code == 1 and "--identity" in out.output
    out = CliRunner().invoke(cli, ["--config", str(cfg), "restore", str(made), "--yes", "--identity", str(identity)])
    assert out.exit_code == 0, out.output


def test_keygen_will_not_leave_the_key_on_the_stations_own_disk(tmp_path, age_key):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n')
    Writer(tmp_path / "s.db").stop()
    out = CliRunner().invoke(cli, ["--config", str(cfg), "backup-keygen", str(tmp_path / "backup.key")])
    assert out.exit_code == 1 and "same disk as the database" in out.output and not (tmp_path / "backup.key").exists()
    out = CliRunner().invoke(cli, ["--config", str(cfg), "backup-keygen", str(tmp_path / "bench.key"), "--on-station"])
    assert out.exit_code == 0 and 'recipients = ["age1' in out.output
    assert oct((tmp_path / "bench.key").stat().st_mode & 0o777) == "0o600"
    again = CliRunner().invoke(cli, ["--config", str(cfg), "backup-keygen", str(tmp_path / "bench.key"), "--on-station"])
    assert again.exit_code == 1 and "never overwritten" in again.output


def test_a_config_with_a_mistyped_recipient_stops_with_the_key_named(tmp_path):
    from station import config
    with pytest.raises(config.ConfigError, match=r"\[backup\] recipients: expected a list of age recipients"):
        config.validate({"backup": {"recipients": ["age1notakey"]}})


def test_two_backups_at_once_the_second_is_told_to_wait_and_the_first_finishes(tmp_path):
    import fcntl
    import os
    Writer(tmp_path / "s.db").stop()
    work = tmp_path / bk.WORK
    work.mkdir()
    fd = os.open(work / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX)         # the timer's backup, still running
    try:
        with pytest.raises(bk.BackupError, match=r"another backup \(pid 4242\) is running"):
            bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3, encrypt_to=[])
    finally:
        os.close(fd)
    assert bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3, encrypt_to=[]).exists()


def test_a_cut_short_backup_leaves_no_plain_copy_behind_for_the_next_one_to_find(tmp_path):
    Writer(tmp_path / "s.db").stop()
    work = tmp_path / bk.WORK
    work.mkdir()
    (work / "snapshot.db").write_bytes(b"a plain copy left by a power cut")
    bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3, encrypt_to=[])
    assert [p.name for p in work.iterdir()] == ["lock"]


@pytest.mark.slow           # a 200 MB database, as a station has after months on a busy mesh
def test_a_200_mb_backup_finishes_while_the_daemon_stores_twenty_frames_a_second(harness, tmp_path, age_key):
    """The online backup API starts again after every outside write and never finished on such a
    station; one read transaction (VACUUM INTO) does, and what the mesh sends meanwhile is stored."""
    import subprocess
    import sys
    import time

    from .conftest import wait_until
    h = harness("idle", "pty", start=False)
    with sqlite3.connect(h.cfg.database_path) as c:          # months of packets, 1 kB each
        c.execute("""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
                     INSERT INTO packets (received_at, from_num, to_num, packet_id, portnum, port, channel, raw)
                     SELECT 1.7e9 + i, 1, 2, 0, 3, 'POSITION_APP', 0, randomblob(1000) FROM n""")
    assert h.cfg.database_path.stat().st_size > 200 * 2**20
    h.start()
    stop = threading.Event()
    amina = h.sim.stage.amina

    def mesh():                     # 20 frames a second from her bracelet, each one stored
        k = 0
        while not stop.is_set():
            k += 1
            h.sim.radio.emit_packet(amina.position(14.69 + k * 1e-6, -17.44))
            stop.wait(0.05)
    before = h.count("SELECT COUNT(*) FROM positions")
    t = threading.Thread(target=mesh)
    t.start()
    cfg = tmp_path / "backup.toml"
    cfg.write_text(f'[storage]\ndatabase = "{h.cfg.database_path}"\n[gpio]\nenabled = false\n'
                   f'[backup]\ndir = "{tmp_path / "stick"}"\nrecipients = ["{age_key[1]}"]\n')
    cfg.chmod(0o640)
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "station", "--config", str(cfg), "backup"],
                              capture_output=True, text=True, timeout=600)
        took = time.monotonic() - started
        during = h.count("SELECT COUNT(*) FROM positions") - before
    finally:
        stop.set()
        t.join()
    assert done.returncode == 0, done.stderr
    assert "backup written and verified" in done.stdout
    assert during >= 10 * took * 0.5, f"only {during} positions stored in {took:.0f} s of backup"
    [made] = bk.backups(tmp_path / "stick")
    assert made.stat().st_size > 100 * 2**20
    wait_until(lambda: not (h.cfg.database_path.parent / bk.WORK / "snapshot.db").exists(), 10,
               what="the plain snapshot removed")
