"""Online backups of the station database with SQLite's backup API, and restores.

The copy is taken in steps while the daemon keeps writing, checked with quick_check, fsynced
and renamed into place: a backup that exists is a whole, verified database.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

PREFIX = "station-"
SUFFIX = ".db"


class BackupError(Exception):
    pass


def _check(path: Path) -> str:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as c:
            rows = [r[0] for r in c.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as e:
        return str(e)
    return "ok" if rows == ["ok"] else "; ".join(rows[:3])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(db_path: Path, dest_dir: Path, keep: int, now: dt.datetime | None = None) -> Path:
    if not db_path.exists():
        raise BackupError(f"there is no database at {db_path}")
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BackupError(f"cannot use the backup folder {dest_dir}: {e.strerror} (is the USB stick mounted?)") from None
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    final = dest_dir / f"{PREFIX}{stamp}{SUFFIX}"
    partial = final.with_suffix(".partial")
    src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            # Small steps with pauses: the daemon's writer is never blocked for long.
            src.backup(dst, pages=256, sleep=0.005)
            # The copy is a single file: in WAL mode every later open (the check below, a
            # restore) would leave -wal and -shm files beside it that pruning never removes.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as e:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {db_path} failed: {e}") from None
    finally:
        src.close()
    result = _check(partial)
    if result != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"the backup copy failed its check ({result}); the previous backups are kept")
    _fsync(partial)
    os.replace(partial, final)
    _fsync(dest_dir)
    for old in backups(dest_dir)[keep:]:
        old.unlink()
    # What an interrupted backup (power cut, full stick) or an older version left behind.
    for pattern in (f"{PREFIX}*.partial*", f"{PREFIX}*{SUFFIX}-wal", f"{PREFIX}*{SUFFIX}-shm"):
        for stale in dest_dir.glob(pattern):
            stale.unlink(missing_ok=True)
    return final


def backups(dest_dir: Path) -> list[Path]:
    """Newest first."""
    return sorted(dest_dir.glob(f"{PREFIX}*{SUFFIX}"), reverse=True)


def restore(backup_file: Path, db_path: Path) -> Path | None:
    """Replace the database with a backup; the current one is kept beside it first."""
    if not backup_file.exists():
        raise BackupError(f"there is no backup at {backup_file}")
    result = _check(backup_file)
    if result != "ok":
        raise BackupError(f"{backup_file} fails its check ({result}): not restored")
    kept = None
    if db_path.exists():
        kept = db_path.with_name(db_path.name + ".before-restore-" +
                                 dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
        src = sqlite3.connect(db_path)
        try:
            with sqlite3.connect(kept) as k:
                src.backup(k)
        finally:
            src.close()
    src = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(db_path)
        try:
            src.backup(dst)   # writes through SQLite, so the WAL and its readers stay consistent
        finally:
            dst.close()
    finally:
        src.close()
    return kept
