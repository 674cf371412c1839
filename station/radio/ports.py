"""Radio ports as operators see them: is it there, who holds it, what went wrong."""

from __future__ import annotations

import os
import re
from pathlib import Path


AUTO_RADIO_PATH = "/dev/meshtastic"   # the udev rule's stable name


def resolve_port(port: str) -> str:
    """`auto`: the radio the udev rule names, else a serial port with a known radio's USB ids
    (radio/finder.py), else the virtual radio."""
    if port == "auto":
        from station.radio.finder import RadioFinder     # finder builds on this module
        return RadioFinder("auto").find() or "sim"
    return port


class RadioUnavailable(Exception):
    """The radio cannot be used right now; the message says why and what to do."""


def parse_tcp(port: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"tcp://([^:/\s]+):(\d{1,5})", port)
    return (m.group(1), int(m.group(2))) if m else None


def holders_of(path: str | os.PathLike) -> list[str]:
    """Processes that have the device open, as 'name (pid N)'. Best effort: other users'
    processes are invisible without privileges."""
    try:
        target = os.path.realpath(path)
    except OSError:
        return []
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        fd_dir = Path("/proc", pid, "fd")
        try:
            for fd in fd_dir.iterdir():
                if os.readlink(fd) == target:
                    name = Path("/proc", pid, "comm").read_text().strip()
                    found.append(f"{name} (pid {pid})")
                    break
        except OSError:
            continue
    return found


def check_serial_path(path: str) -> None:
    if not os.path.exists(path):
        raise RadioUnavailable(f"radio port {path} is not present: is the radio plugged in? "
                               "(`ls /dev/serial/by-id/` lists serial devices)")
    if not os.access(path, os.R_OK | os.W_OK):
        raise RadioUnavailable(f"no permission to open {path}: add this user to the dialout group "
                               "(sudo adduser $USER dialout) and log in again")


def describe_serial_error(path: str, e: Exception) -> str:
    text = str(e)
    if "lock" in text.lower() or "busy" in text.lower():
        who = holders_of(path)
        held = f" by {', '.join(who)}" if who else " by another process"
        return f"radio port {path} is held{held}: close it (another station, the meshtastic CLI, a flasher?)"
    if "Permission denied" in text:
        return f"no permission to open {path}: add this user to the dialout group"
    if "No such file" in text or "could not open port" in text:
        return f"radio port {path} disappeared while opening it (unplugged?)"
    return f"radio port {path}: {text}"
