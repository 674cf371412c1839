"""A damaged database, a wrong file, a read-only card: what the office sees when the station cannot
start on its database. One line that names the fault and the remedy (for damage: which backup is
newest, with the command that restores it), never a traceback, and the damaged file kept."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from station.storage import records
from station.storage.writer import Writer

from .test_faults import small_disk  # noqa: F401  (a fixture)


def station(cfg: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=timeout)


def config(tmp_path: Path, db: Path, backups: Path) -> Path:
    cfg = tmp_path / "station.toml"
    # Not `sim`: the daemon must stop at its database, before any radio or console is started.
    cfg.write_text(f'[radio]\nport = "{tmp_path / "no-radio"}"\n[storage]\ndatabase = "{db}"\n'
                   f'[gpio]\nenabled = false\n[backup]\ndir = "{backups}"\nplaintext = true\n')
    cfg.chmod(0o640)
    return cfg


def stored_alert(db: Path) -> None:
    w = Writer(db).start()
    w.call(lambda d: records.set_state(d, "marker", "before", 1.0))
    w.stop()


def damage_table(db: Path, table: str) -> None:
    """Overwrite the root page of `table`, as a failing SD card does to a block."""
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = c.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()[0]
        size = c.execute("PRAGMA page_size").fetchone()[0]
    with open(db, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\xde\xad" * (size // 2))


def test_a_damaged_database_names_the_newest_backup_and_the_restore_brings_the_station_back(tmp_path):
    db, backups = tmp_path / "data" / "station.db", tmp_path / "stick"
    stored_alert(db)
    cfg = config(tmp_path, db, backups)
    made = station(cfg, "backup")
    assert made.returncode == 0, made.stderr
    newest = sorted(backups.glob("station-*.db"))[-1]
    damage_table(db, "station_state")

    run = station(cfg, "run")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr + run.stdout
    error = [x for x in run.stderr.splitlines() if x.startswith("Error:")]
    assert len(error) == 1, run.stderr
    assert f"database {db} is damaged" in error[0]
    assert f"station restore {newest}" in error[0]
    assert "verified" in error[0]

    doctor = station(cfg, "doctor")
    assert f"station restore {newest}" in doctor.stdout

    restored = station(cfg, "restore", str(newest), "--yes")
    assert restored.returncode == 0, restored.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert json.loads(c.execute("SELECT value FROM station_state WHERE key='marker'").fetchone()[0]) == "before"
    kept = [p for p in db.parent.iterdir() if ".before-restore-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1, "the damaged file must be kept for a technician"
    Writer(db).stop()              # it opens and checks clean: the daemon can start on it


def test_a_damaged_database_with_no_backup_says_so_instead_of_a_command_that_cannot_work(tmp_path):
    db = tmp_path / "data" / "station.db"
    stored_alert(db)
    damage_table(db, "station_state")
    run = station(config(tmp_path, db, tmp_path / "stick"), "run")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "no backup in" in run.stderr and "is the USB stick mounted?" in run.stderr


@pytest.mark.parametrize("content", [b"[storage]\ndatabase = 'x'\n", b"\x89PNG\r\n\x1a\n" + b"\0" * 600])
def test_a_wrong_file_at_the_database_path_is_named_as_a_wrong_path_and_left_untouched(tmp_path, content):
    db = tmp_path / "data" / "station.db"
    db.parent.mkdir()
    db.write_bytes(content)
    run = station(config(tmp_path, db, tmp_path / "stick"), "run")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"{db} is not an SQLite database" in run.stderr
    assert "is [storage] database the right path?" in run.stderr
    assert db.read_bytes() == content


def test_a_card_remounted_read_only_is_blamed_on_the_medium_not_on_the_user(tmp_path, small_disk):  # noqa: F811
    db = small_disk / "station.db"
    stored_alert(db)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        run = station(config(tmp_path, db, tmp_path / "stick"), "run")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "mounted read-only" in run.stderr and "dmesg" in run.stderr
    assert "this user" not in run.stderr
    assert os.path.exists(db)
