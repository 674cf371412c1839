"""What the station keeps on its card, and who else on the machine may read it. Someone with an
account on the Pi (or a service that was broken into) must not read wearers' names, tracks, PIN
hashes, the console's signing key or the mesh key: every file is kept from "other" users, the
daemon refuses to start when one is not, and `station doctor` says which and how to mend it."""

from __future__ import annotations

import stat
from pathlib import Path

UMASK = 0o027          # every command: files rw for the owner, r for the station group, nothing for others


class ExposedFiles(Exception):
    pass


def kept_files(cfg) -> list[Path]:
    """The files that hold what a seizer or another user must not read."""
    db = cfg.database_path
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    files.append(Path(cfg.console["secret_file"]) if cfg.console["secret_file"] else db.with_name("console.key"))
    files.append(Path(cfg.mesh["psk_file"]) if cfg.mesh["psk_file"] else db.with_name("mesh.psk"))
    from station.pins import configured_key_path
    files.append(configured_key_path(cfg))
    if cfg.source is not None:
        files.append(cfg.source)
    return files


def exposed(cfg) -> list[tuple[Path, int]]:
    """Each existing file that "other" users may read or write, with its mode."""
    out = []
    for path in kept_files(cfg):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o007:
            out.append((path, mode))
    return out


def remedy(found: list[tuple[Path, int]]) -> str:
    return "chmod o-rwx " + " ".join(str(p) for p, _ in found)


def refuse_exposed(cfg) -> None:
    found = exposed(cfg)
    if found:
        listed = ", ".join(f"{p} (mode {m:o})" for p, m in found)
        raise ExposedFiles(f"refusing to start: other users of this machine can read {listed}; "
                           f"fix with: {remedy(found)}")
