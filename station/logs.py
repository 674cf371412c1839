"""Logging: one line per important event, `key=value` with stable field names.

Under systemd (JOURNAL_STREAM set) lines go to stdout without a timestamp (the journal adds
one); by hand, with a timestamp. Important events use `event(log, "alert.opened", incident=3,
...)`; their field names are part of the interface (documented in the README). At the default
level nothing logged holds a PIN, a credential or a precise position: incident events carry ids,
not coordinates.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from pathlib import Path

_BARE = re.compile(r"^[\w.:/!@+-]+$")


def _value(v) -> str:
    s = str(v)
    return s if s and _BARE.match(s) else '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def __init__(self, timestamps: bool):
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if self.timestamps:
            parts.append("ts=" + self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"))
        parts += [f"level={record.levelname.lower()}", f"logger={record.name}"]
        name = getattr(record, "event", None)
        if name:
            parts.append(f"event={name}")
            parts += [f"{k}={_value(v)}" for k, v in getattr(record, "fields", {}).items() if v is not None]
        msg = record.getMessage()
        if msg and msg != name:
            parts.append(f"msg={_value(msg)}")
        if record.exc_info:
            parts.append(f"exc={_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


def event(log: logging.Logger, name: str, level: int = logging.INFO, message: str = "", **fields) -> None:
    log.log(level, message or name, extra={"event": name, "fields": fields})


def setup(level: str, raw_frames: str = "") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LogfmtFormatter(timestamps="JOURNAL_STREAM" not in os.environ))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    # The library logs every frame at DEBUG and errors the station already handles at ERROR.
    logging.getLogger("meshtastic").setLevel(logging.CRITICAL)
    raw = logging.getLogger("station.rawframes")
    raw.propagate = False
    for h in list(raw.handlers):
        raw.removeHandler(h)
    if raw_frames:
        path = Path(raw_frames)
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(path, maxBytes=10 * 2**20, backupCount=5)
        fh.setFormatter(logging.Formatter("%(created).3f %(message)s"))
        raw.addHandler(fh)
        raw.setLevel(logging.DEBUG)
        os.chmod(path, 0o640)
    else:
        raw.setLevel(logging.CRITICAL + 1)
