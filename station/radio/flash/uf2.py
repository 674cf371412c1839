"""nRF52 boards through their UF2 bootloader: the 1200-baud touch (open the port at 1200 baud and
close it: the Adafruit nRF52 core reboots into the bootloader), the bootloader's USB drive found by
the INFO_UF2.TXT it holds, the file copied onto it. The bootloader then writes it, drops the
drive and boots the new firmware, whose serial port comes back where the radio was.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import serial

from station.radio.flash.files import FirmwareFile

# Where desktops and udisks mount a USB drive; a Pi without a desktop needs --drive (or a mount).
DRIVE_PATTERNS = ("/media/*/*", "/media/*", "/run/media/*/*", "/mnt/*")
CHUNK = 64 * 1024


class DriveNotFound(Exception):
    pass


@dataclass(frozen=True)
class Drive:
    path: Path
    model: str
    board_id: str
    bootloader: str


def touch(port: str) -> None:
    """Open at 1200 baud and close. A pty or a board without the touch refuses modem lines:
    only the speed and the close matter."""
    with contextlib.suppress(serial.SerialException, OSError):
        s = serial.Serial()
        s.port = port
        s.baudrate = 1200
        s.dsrdtr = False
        s.open()
        s.close()


def read_info(folder: Path) -> Drive | None:
    try:
        text = (folder / "INFO_UF2.TXT").read_text(errors="replace")
    except OSError:
        return None
    fields = {}
    lines = text.splitlines()
    for line in lines[1:]:
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return Drive(folder, fields.get("Model", "?"), fields.get("Board-ID", "?"), lines[0].strip() if lines else "?")


def drives(patterns: tuple[str, ...]) -> dict[Path, Drive]:
    found = {}
    for pattern in patterns:
        for p in glob.glob(pattern):
            d = read_info(Path(p))
            if d is not None:
                found[d.path] = d
    return found


def wait_for_drive(patterns: tuple[str, ...], before: dict[Path, Drive], timeout: float) -> Drive:
    """The bootloader drive that appeared after the touch (one already there before is another
    board's, or this board's from an earlier attempt that never left its bootloader)."""
    deadline = time.monotonic() + timeout
    while True:
        new = [d for p, d in drives(patterns).items() if p not in before]
        if len(new) == 1:
            return new[0]
        if len(new) > 1:
            raise DriveNotFound("several UF2 drives appeared: " + ", ".join(str(d.path) for d in new)
                                + "; unplug the other boards or name the drive with --drive")
        if time.monotonic() > deadline:
            raise DriveNotFound(f"no UF2 drive appeared within {timeout:.0f} s in {', '.join(patterns)}: "
                                "press the board's reset button twice quickly, mount the drive "
                                "(its label is the board's name) and name it with --drive")
        time.sleep(0.1)


def copy(f: FirmwareFile, drive: Drive, progress: Callable[[int, int], None] | None = None) -> None:
    target = drive.path / f.path.name
    total = len(f.data)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for at in range(0, total, CHUNK):
            os.write(fd, f.data[at:at + CHUNK])
            if progress:
                progress(min(at + CHUNK, total), total)
        with contextlib.suppress(OSError):
            # The bootloader may reboot as soon as the last block lands, taking the drive with it.
            os.fsync(fd)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
