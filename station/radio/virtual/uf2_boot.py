"""An nRF52840 board (RAK4631, T-Echo, T1000-E) as a technician flashes it: Meshtastic firmware on
USB serial until the host "touches" the port (opens it at 1200 baud and closes it: the reset the
firmware's own bin/device-install.sh and device-update.sh do with RESET_BAUD=1200), then the
Adafruit UF2 bootloader: the serial port disappears and a USB drive appears holding INFO_UF2.TXT
(Adafruit_nRF52_Bootloader src/usb/uf2/ghostfat.c: "UF2 Bootloader <version>", "Model: <product>",
"Board-ID: <board id>"; the strings below are stand-ins: the station only shows them). A .uf2 file copied onto the drive is written block by block; blocks for
another family are ignored, as the bootloader does. When every block of the file has arrived, the
drive goes away and the board boots the new firmware: the serial port comes back at the same
place, and the version the firmware reports is the one in its bytes.

The drive is a folder under `drive_root` (where a desktop would mount it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import shutil
import struct
import termios
import threading
from pathlib import Path

from station.radio.virtual.device import VirtualRadio
from station.radio.virtual.transports import PtyPort

log = logging.getLogger(__name__)

UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
FAMILY_NRF52840 = 0xADA52840          # extra_scripts/nrf52_extra.py:20 (uf2conv.py -f 0xADA52840)
VERSION_RE = re.compile(rb"(\d+\.\d+\.\d+\.[0-9a-f]{7})")


@dataclasses.dataclass(frozen=True)
class Bootloader:
    label: str            # the drive's volume label
    model: str
    board_id: str
    version: str = "0.9.2"


BOOTLOADERS = {
    "rak4631": Bootloader("RAK4631", "WisBlock RAK4631 Board", "WisBlock-RAK4631-Board"),
    "techo": Bootloader("TECHOBOOT", "LilyGo T-Echo", "nRF52840-TEcho-v1"),
    "t1000e": Bootloader("T1000-E", "Seeed T1000-E", "T1000-E-v1"),
}


def read_blocks(data: bytes, family: int = FAMILY_NRF52840) -> tuple[dict[int, bytes], int | None]:
    """The payloads of the well-formed blocks for `family`, by block number, and how many blocks
    the file says it has."""
    blocks: dict[int, bytes] = {}
    total = None
    for at in range(0, len(data) - 511, 512):
        m0, m1, flags, addr, size, n, count, fam = struct.unpack_from("<8I", data, at)
        end, = struct.unpack_from("<I", data, at + 508)
        if (m0, m1, end) != (UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END) or size > 476:
            continue
        if flags & 0x2000 and fam != family:
            continue
        blocks[n] = data[at + 32:at + 32 + size]
        total = count
    return blocks, total


class Nrf52Board:
    def __init__(self, radio: VirtualRadio, link: str, drive_root: Path, device: str | None = None):
        self.radio = radio
        self.bootloader = BOOTLOADERS[device or radio.device]
        self.drive_root = Path(drive_root)
        self.drive: Path | None = None
        self.boots: list[str | None] = []
        # Fault: the new build cannot load the old config files and installs its defaults, with a
        # new key (NodeDB.cpp:1308-1311 loadFromDisk, v2.7.26).
        self.forgets_config = False
        self.flashed = b""
        self._stop = threading.Event()
        self.port = PtyPort(self, link)

    # -- what PtyPort calls --------------------------------------------------------------------
    def attach(self, transport) -> None:
        self.radio.attach(transport)

    def feed(self, data: bytes) -> None:
        self.radio.feed(data)

    def host_present(self, present: bool) -> None:
        self.radio.host_present(present)
        if not present and self.port.hangup_speed == termios.B1200 and self.drive is None:
            # Not from the port's own thread: unplugging joins it.
            threading.Thread(target=self._enter_bootloader, name="vuf2-touch", daemon=True).start()

    # -- the bootloader ------------------------------------------------------------------------
    def _enter_bootloader(self) -> None:
        log.info("virtual %s: 1200-baud touch, into the UF2 bootloader", self.bootloader.label)
        self.port.unplug()
        drive = self.drive_root / self.bootloader.label
        drive.mkdir(parents=True, exist_ok=True)
        b = self.bootloader
        (drive / "INFO_UF2.TXT").write_text(f"UF2 Bootloader {b.version}\r\nModel: {b.model}\r\n"
                                            f"Board-ID: {b.board_id}\r\nDate: Nov 22 2026\r\n")
        (drive / "INDEX.HTM").write_text("<!doctype html><html><body></body></html>\n")
        self.drive = drive
        threading.Thread(target=self._watch, args=(drive,), name="vuf2-drive", daemon=True).start()

    def _watch(self, drive: Path) -> None:
        while not self._stop.wait(0.05):
            for f in drive.iterdir():
                if f.suffix.lower() != ".uf2" or f.name.upper() == "CURRENT.UF2":
                    continue
                with contextlib.suppress(OSError):
                    blocks, total = read_blocks(f.read_bytes())
                    if total and len(blocks) == total:
                        self._boot(b"".join(blocks[n] for n in range(total)))
                        return

    def _boot(self, image: bytes) -> None:
        found = VERSION_RE.search(image)
        version = found.group(1).decode() if found else None
        self.flashed = image
        self.boots.append(version)
        if self.drive is not None:
            shutil.rmtree(self.drive, ignore_errors=True)
        self.drive = None
        if version is None:
            log.warning("virtual %s: the new image holds no firmware version: it does not boot",
                        self.bootloader.label)
            return
        if self.forgets_config:
            self.radio.factory_reset(full=True)
        self.radio.boot_image(version)
        self.port.plug()

    def close(self) -> None:
        self._stop.set()
        self.port.unplug()
        if self.drive is not None:
            shutil.rmtree(self.drive, ignore_errors=True)
