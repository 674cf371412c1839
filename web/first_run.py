"""A station with no console account: the first administrator is created in the browser with a
one-time setup code, which the console prints when it starts (journalctl -u station-console) and
keeps in a file beside the database that only the station's user and root can read
(`station users setup-code` shows it too). Once an account exists the page is gone for good."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from station.config import Config

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"     # no 0/O or 1/I to misread off a screen


def needed(db) -> bool:
    return db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is None


def code_path(cfg: Config) -> Path:
    return cfg.database_path.with_name("console.setup-code")


def code(cfg: Config) -> str:
    """The setup code, made on first use: two groups of four, about 40 bits."""
    path = code_path(cfg)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    made = "-".join("".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(2))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:        # another console process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(made + "\n")
    return made


def forget(cfg: Config) -> None:
    code_path(cfg).unlink(missing_ok=True)
