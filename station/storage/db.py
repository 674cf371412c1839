"""Opening the station database with the settings that make it survive power cuts."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

BUSY_TIMEOUT_MS = 5000


class StorageError(Exception):
    """The database cannot be used; the message is meant for the operator. `damaged`: the file
    itself is bad (a restore is the remedy), not its folder, lock or medium."""

    def __init__(self, message: str, *, damaged: bool = False):
        super().__init__(message)
        self.damaged = damaged


SQLITE_HEADER = b"SQLite format 3\x00"


def unusable(path: Path | str, e: BaseException) -> StorageError:
    """A file SQLite refuses, in the operator's words: another kind of file at the configured
    path (a wrong [storage] database), or a station database with damaged pages."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError:
        head = b""
    if head and head != SQLITE_HEADER:
        return StorageError(f"{path} is not an SQLite database ({e}): is [storage] database the right path?",
                            damaged=True)
    return StorageError(f"database {path} is damaged ({e})", damaged=True)


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
        raise StorageError(explain(path, e)) from None
    except sqlite3.DatabaseError as e:
        raise unusable(path, e) from None
    if mode.lower() != "wal":
        raise StorageError(f"database {path} could not be switched to WAL mode (got {mode})")
    return sqlite_utils.Database(conn)


def explain(path: Path, e: sqlite3.OperationalError) -> str:
    msg = str(e)
    if "locked" in msg or "busy" in msg:
        holder = write_lock_holder(path)
        return (f"database {path} is locked by {holder or 'another process'} (another `station run`, a backup, "
                f"a command left waiting?): {msg}")
    if read_only_medium(path):
        return _read_only(path)
    if "unable to open" in msg or "readonly" in msg:
        return f"database {path} cannot be opened for writing by this user: {msg}"
    return f"database {path}: {msg}"


def _read_only(path: Path) -> str:
    return (f"database {path} is on a medium mounted read-only (an SD card with errors remounts itself so): "
            "check it (dmesg), then restore the newest backup onto a sound card: station restore FILE")


def file_error(path: Path, beside: Path, e: OSError) -> str:
    """A file the station keeps beside its database (its lock, its spool) that cannot be made."""
    if read_only_medium(path):
        return _read_only(path)
    return f"cannot open {beside}: {e.strerror or e} (the folder must belong to the station user)"


def read_only_medium(path: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def write_lock_holder(path: Path | str, locks: Path = Path("/proc/locks")) -> str | None:
    """Which process holds the database's write lock: in WAL mode SQLite takes it as a POSIX lock
    on byte 120 of the -shm file (WAL_WRITE_LOCK, sqlite3.c unixShmLock). It is read from
    /proc/locks, never by opening the -shm: closing any descriptor of a file drops every POSIX
    lock this process holds on it (fcntl(2)), which would pull the locks from under this
    process's own SQLite connections. None when nobody holds it or it cannot be told."""
    try:
        st = os.stat(f"{path}-shm")
        table = locks.read_text()
    except OSError:
        return None
    file_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:          # a process waiting for the lock, not holding it
            continue
        try:
            kind, access, pid, where, start, end = fields[1], fields[3], int(fields[4]), fields[5], fields[6], fields[7]
        except (IndexError, ValueError):
            continue
        if kind in ("POSIX", "OFDLCK") and access == "WRITE" and where == file_id and pid > 0 and \
                int(start) <= 120 and (end == "EOF" or int(end) >= 120):
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                name = "a process"
            return f"{name} (pid {pid})"
    return None


def why_unavailable(path: Path | str, e: BaseException) -> str:
    """A failed commit in the operator's words: the cause and who to look at."""
    msg = str(e)
    if "full" in msg or getattr(e, "sqlite_errorname", "") == "SQLITE_FULL":
        return f"disk full ({Path(path).parent}): free space, then the held changes are stored"
    if "locked" in msg or "busy" in msg:
        holder = write_lock_holder(path)
        return f"locked by {holder}" if holder else "locked by another process"
    if read_only_medium(Path(path)):
        return "the medium is read-only (SD card errors?)"
    return describe(e)


def describe(e: BaseException) -> str:
    """An SQLite error with its extended code: "disk I/O error" alone does not say which I/O
    failed (SQLITE_IOERR_SHORT_READ: a file cut short under it; SQLITE_IOERR_SHMSIZE: no room
    for the WAL index)."""
    name = getattr(e, "sqlite_errorname", "")
    return f"{e} ({name})" if name and name != "SQLITE_ERROR" else str(e)


def quick_check(db: sqlite_utils.Database) -> str:
    """'ok' or the first problems SQLite reports."""
    rows = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])
