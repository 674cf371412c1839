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
        made = bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3)
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
        bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=3, now=dt.datetime(2026, 11, day, tzinfo=dt.timezone.utc))
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
        made = bk.backup(tmp_path / "s.db", usb, keep=3, now=dt.datetime(2026, 11, day, tzinfo=dt.timezone.utc))
        assert count(made) == 0          # each one opens (and is opened by its own check) cleanly
    assert sorted(p.name for p in usb.iterdir()) == [
        "station-20261103T000000Z.db", "station-20261104T000000Z.db", "station-20261105T000000Z.db"]


def test_restore_brings_back_the_backup_and_keeps_the_current_database(tmp_path):
    w = Writer(tmp_path / "s.db").start()
    w.call(lambda db: records.insert_reject(db, 1.0, "test", "before backup"))
    made = bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=2)
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
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n[backup]\ndir = "{tmp_path / "usb"}"\nkeep = 2\n')
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
