"""Where the daemon keeps what need not survive it: its status snapshot, rewritten every few
seconds. Kept on a RAM file system (/run/station under systemd), never in the database: a
snapshot through the database every 2 s was about 400 MB and 43,000 fsyncs a day on the Pi's SD
card (issue 14), the wear that kills appliances in their first year.

Every process that reads the status (console, command line, doctor) finds the same file from the
database path alone, so no new setting has to agree between them."""

from __future__ import annotations

import hashlib
import json
import os
import time
import tempfile
from pathlib import Path
from typing import Any

SYSTEM_DIR = Path("/run/station")    # systemd's RuntimeDirectory= of station.service


def runtime_dir() -> Path:
    """$STATION_RUNTIME_DIR, else /run/station when it exists (the service made it), else the
    user's own RAM-backed folder; a folder on disk only when there is no tmpfs at all."""
    if os.environ.get("STATION_RUNTIME_DIR"):
        return Path(os.environ["STATION_RUNTIME_DIR"])
    if SYSTEM_DIR.is_dir() and os.access(SYSTEM_DIR, os.R_OK | os.X_OK):
        return SYSTEM_DIR
    if os.environ.get("XDG_RUNTIME_DIR") and Path(os.environ["XDG_RUNTIME_DIR"]).is_dir():
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "station"
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"station-{os.getuid()}"


def runtime_file(database: Path | str, kind: str, suffix: str) -> Path:
    """This database's `kind` file in the runtime folder (each database its own)."""
    key = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:16]
    return runtime_dir() / f"{kind}-{key}{suffix}"


def status_path(database: Path | str) -> Path:
    return runtime_file(database, "status", ".json")


def write_status(database: Path | str, snapshot: dict[str, Any]) -> None:
    """Replace the snapshot atomically (a reader never sees half of it); no fsync: it lives in RAM
    and means nothing after a power cut."""
    path = status_path(database)
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(written(snapshot), default=str))
    os.replace(tmp, path)


def read_status(database: Path | str) -> tuple[dict[str, Any], float] | None:
    """The snapshot and when it was written, or None when no daemon ever wrote one here."""
    path = status_path(database)
    try:
        return json.loads(path.read_text()), path.stat().st_mtime
    except (OSError, ValueError):      # none yet, or not this user's to read: "not running" is all we know
        return None


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def written(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Stamps a snapshot with the boot's monotonic clock, which every process shares and no one
    sets: its age stays true when the wall clock steps (2 h ahead, a dead daemon would look alive
    for 2 h; 2 h back, a live one dead)."""
    return {**snapshot, "written": {"monotonic": time.monotonic(), "boot": boot_id()}}


def age_of(snapshot: dict[str, Any], mtime: float) -> float:
    """Seconds since the snapshot was written."""
    w = snapshot.get("written") or {}
    if w.get("boot") and w.get("boot") == boot_id() and isinstance(w.get("monotonic"), (int, float)):
        return time.monotonic() - w["monotonic"]
    return time.time() - mtime


def station_now(database: Path | str) -> float:
    """The station's time for the console and the commands: the system clock plus what the
    running daemon's clock adds (a GPS correction, a step whose timers it is still moving), so
    that one event log holds one clock. The system clock when no daemon runs."""
    got = read_status(database)
    if got:
        snap, mtime = got
        if (snap.get("station") or {}).get("phase") == "running" and age_of(snap, mtime) < 30:
            return time.time() + float((snap.get("clock") or {}).get("minus_system_s") or 0.0)
    return time.time()
