"""Opening the station database with the settings that make it survive power cuts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

BUSY_TIMEOUT_MS = 5000


class StorageError(Exception):
    """The database cannot be used; the message is meant for the operator."""


def connect(path: Path | str, *, create: bool = True) -> sqlite_utils.Database:
    """Open the database with WAL, synchronous=FULL and a busy timeout.

    The connection runs in autocommit mode: every transaction is an explicit BEGIN/COMMIT,
    so nothing is reported as stored before its COMMIT returns.
    """
    path = Path(path)
    if not create and not path.exists():
        raise StorageError(f"database {path} does not exist (has `station run` ever started with this config?)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create the database folder {path.parent}: {e.strerror}") from None
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.OperationalError as e:
        raise StorageError(_explain(path, e)) from None
    except sqlite3.DatabaseError as e:
        raise StorageError(f"database {path} is not a usable SQLite file: {e}") from None
    if mode.lower() != "wal":
        raise StorageError(f"database {path} could not be switched to WAL mode (got {mode})")
    return sqlite_utils.Database(conn)


def _explain(path: Path, e: sqlite3.OperationalError) -> str:
    msg = str(e)
    if "locked" in msg or "busy" in msg:
        return f"database {path} is locked by another process (another `station run`, or a backup?): {msg}"
    if "unable to open" in msg or "readonly" in msg:
        return f"database {path} cannot be opened for writing by this user: {msg}"
    return f"database {path}: {msg}"


def quick_check(db: sqlite_utils.Database) -> str:
    """'ok' or the first problems SQLite reports."""
    rows = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])
