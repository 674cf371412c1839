"""Backups of the station database, sealed for a key kept off the station, and restores.

A backup is a VACUUM INTO of one read transaction: a whole, compact snapshot taken while the daemon
keeps writing (the online backup API starts again after every outside write, and on a busy mesh
never finished), with no free page that could still hold a purged row. The copy is made in a
private folder beside the database (as exposed as the database itself, no more), checked with
quick_check, encrypted with age to the configured recipients straight onto the backup medium,
fsynced and renamed into place: a backup that exists is a whole, verified, sealed database. The
plain copy never touches the stick, so a lost stick holds nothing readable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import sqlite3
from pathlib import Path

from station.storage import age

PREFIX = "station-"
SUFFIX = ".db"
SEALED = ".db.age"
WORK = ".backup-work"


class BackupError(Exception):
    pass


def _check(path: Path) -> str:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
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


@contextlib.contextmanager
def _work_folder(db_path: Path):
    """Private, and one backup at a time (the timer's and a technician's): what an interrupted
    backup left in it can then be removed safely."""
    work = db_path.parent / WORK
    work.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(work / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise BackupError(f"another backup (pid {holder}) is running; try again when it has finished") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        for stale in work.iterdir():
            if stale.name != "lock":
                stale.unlink(missing_ok=True)
        yield work
    finally:
        for left in work.iterdir():
            if left.name != "lock":
                left.unlink(missing_ok=True)
        os.close(fd)


def _snapshot(db_path: Path, dest: Path) -> None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)) as src:
            src.execute("VACUUM INTO ?", (str(dest),))
    except sqlite3.Error as e:
        raise BackupError(f"backup of {db_path} failed: {e}") from None
    result = _check(dest)
    if result != "ok":
        raise BackupError(f"the backup copy failed its check ({result}); the previous backups are kept")


def backup(db_path: Path, dest_dir: Path, keep: int, now: dt.datetime | None = None, *,
           encrypt_to: list[str]) -> Path:
    """A new backup in `dest_dir`, sealed for `encrypt_to` (age recipients); an empty list writes a
    plain copy, which only a config that says so asks for."""
    if not db_path.exists():
        raise BackupError(f"there is no database at {db_path}")
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BackupError(f"cannot use the backup folder {dest_dir}: {e.strerror} (is the USB stick mounted?)") from None
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    final = dest_dir / f"{PREFIX}{stamp}{SEALED if encrypt_to else SUFFIX}"
    partial = dest_dir / f"{PREFIX}{stamp}.partial"
    with _work_folder(db_path) as work:
        plain = work / "snapshot.db"
        _snapshot(db_path, plain)
        try:
            if encrypt_to:
                age.encrypt(plain, partial, encrypt_to)
            else:
                shutil.copyfile(plain, partial)
            _fsync(partial)
        except (age.AgeError, OSError) as e:
            partial.unlink(missing_ok=True)
            raise BackupError(f"writing the backup to {dest_dir} failed: {e}") from None
    os.replace(partial, final)
    _fsync(dest_dir)
    for old in backups(dest_dir)[keep:]:
        old.unlink()
    # What an interrupted backup (power cut, full stick) or an older version left behind.
    for pattern in (f"{PREFIX}*.partial*", f"{PREFIX}*{SUFFIX}-wal", f"{PREFIX}*{SUFFIX}-shm"):
        for stale in dest_dir.glob(pattern):
            stale.unlink(missing_ok=True)
    return final


def configured(cfg, dest: str | None = None, keep: int | None = None) -> Path:
    """A backup as the config asks for it (`station backup`, the console's Backups page): into
    [backup] dir (or `dest`), sealed to [backup] recipients unless plaintext is chosen."""
    folder = dest or cfg.backup["dir"]
    if not folder:
        raise BackupError("no backup folder: give DEST or set [backup] dir in the config")
    recipients = cfg.backup["recipients"]
    if not recipients and not cfg.backup["plaintext"]:
        raise BackupError(
            "no [backup] recipients: backups are encrypted to a key kept off the station. Make one with "
            "`station backup-keygen FILE` on a medium that leaves the station, and add the public key it "
            "prints to [backup] recipients (or set [backup] plaintext = true to write readable copies)")
    return backup(cfg.database_path, Path(folder), keep or cfg.backup["keep"], encrypt_to=recipients)


def backups(dest_dir: Path) -> list[Path]:
    """Newest first, sealed or plain."""
    found = [*dest_dir.glob(f"{PREFIX}*{SUFFIX}"), *dest_dir.glob(f"{PREFIX}*{SEALED}")]
    return sorted(found, key=lambda p: p.name.removesuffix(".age"), reverse=True)


def restore_hint(dest_dir: str | Path | None) -> str:
    """What to do about a damaged database: which backup to restore (a backup that exists passed
    its check before it was renamed into place), with the command."""
    if not dest_dir:
        return "no [backup] dir is configured, so there is no backup to restore; keep the damaged file for a technician"
    found = backups(Path(dest_dir)) if Path(dest_dir).is_dir() else []
    if not found:
        return f"no backup in {dest_dir} (is the USB stick mounted?); keep the damaged file for a technician"
    newest = found[0]
    made = dt.datetime.fromtimestamp(newest.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    key = " --identity KEYFILE" if newest.name.endswith(".age") else ""
    return (f"restore the newest backup (verified when made, {made}): station restore {newest}{key} "
            "(the damaged database is kept beside it)")


def _keep_aside(db_path: Path, kept: Path) -> None:
    """The current database, kept before a restore: through SQLite when it can read it, else (a
    damaged file) its bytes, moved aside so that the restore writes a fresh file."""
    try:
        with contextlib.closing(sqlite3.connect(db_path)) as src, contextlib.closing(sqlite3.connect(kept)) as k:
            src.backup(k)
        return
    except sqlite3.DatabaseError:
        kept.unlink(missing_ok=True)
    for suffix in ("", "-wal"):
        if Path(f"{db_path}{suffix}").exists():
            os.replace(f"{db_path}{suffix}", f"{kept}{suffix}")
    Path(f"{db_path}-shm").unlink(missing_ok=True)


def restore(backup_file: Path, db_path: Path, identity: Path | None = None) -> Path | None:
    """Replace the database with a backup; the current one is kept beside it first. A sealed
    backup needs the identity that was kept off the station."""
    if not backup_file.exists():
        raise BackupError(f"there is no backup at {backup_file}")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with _work_folder(db_path) as work:
        source = backup_file
        if age.is_sealed(backup_file):
            if identity is None:
                raise BackupError(f"{backup_file.name} is encrypted: give the key kept off the station "
                                  "(station restore FILE --identity KEYFILE)")
            source = work / "opened.db"
            try:
                age.decrypt(backup_file, source, identity)
            except age.AgeError as e:
                raise BackupError(f"{e}: not restored") from None
        result = _check(source)
        if result != "ok":
            raise BackupError(f"{backup_file} fails its check ({result}): not restored")
        kept = None
        if db_path.exists():
            kept = db_path.with_name(db_path.name + ".before-restore-" +
                                     dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
            _keep_aside(db_path, kept)
        with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
                contextlib.closing(sqlite3.connect(db_path)) as dst:
            src.backup(dst)   # writes through SQLite, so the WAL and its readers stay consistent
    return kept
