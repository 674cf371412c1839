"""What a firmware file is for, read from its name (as the Meshtastic release names its files,
firmware-<board>-<version>.bin | .factory.bin | .uf2) and checked against its bytes: the chip in
an ESP image's header, the family in every UF2 block. A file that does not say what it is for,
or whose bytes contradict its name, is refused: flashing the wrong build bricks a radio.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path


class FlashRefused(Exception):
    """Nothing was written; the message says why and what to do."""


@dataclass(frozen=True)
class Board:
    env: str            # the build's PlatformIO environment, as in the file name
    hw_model: str       # HardwareModel name the radio reports (custom_meshtastic_hw_model_slug)
    arch: str           # custom_meshtastic_architecture


# github:meshtastic/firmware v2.7.26, variants/*/<board>/platformio.ini: [env:<env>],
# custom_meshtastic_hw_model_slug and custom_meshtastic_architecture.
BOARDS = {b.env: b for b in (
    Board("heltec-v3", "HELTEC_V3", "esp32-s3"),              # variants/esp32s3/heltec_v3
    Board("tbeam", "TBEAM", "esp32"),                         # variants/esp32/tbeam
    Board("rak4631", "RAK4631", "nrf52840"),                  # variants/nrf52840/rak4631
    Board("t-echo", "T_ECHO", "nrf52840"),                    # variants/nrf52840/t-echo
    Board("tracker-t1000-e", "TRACKER_T1000_E", "nrf52840"),  # variants/nrf52840/tracker-t1000-e
)}
ESP_CHIPS = {"esp32": ("ESP32", 0), "esp32-s3": ("ESP32-S3", 9)}   # esptool targets: IMAGE_CHIP_ID
CHIP_NAMES = {0: "ESP32", 2: "ESP32-S2", 5: "ESP32-C3", 9: "ESP32-S3", 12: "ESP32-C2", 13: "ESP32-C6"}
APP_OFFSET = 0x10000                 # bin/device-update.sh UPDATE_OFFSET: the application slot
UF2_FAMILY_NRF52840 = 0xADA52840     # extra_scripts/nrf52_extra.py:20 (uf2conv.py -f 0xADA52840)
UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
NAME = re.compile(r"^firmware-(?P<board>[a-z0-9_-]+?)-(?P<version>\d+\.\d+\.\d+\.[0-9a-f]{7})"
                  r"(?P<kind>\.factory\.bin|\.bin|\.uf2)$")


@dataclass(frozen=True)
class FirmwareFile:
    path: Path
    board: Board
    version: str
    kind: str            # "esp-update" (at 0x10000), "esp-factory" (at 0) or "uf2"
    data: bytes

    @property
    def chip(self) -> str | None:
        return ESP_CHIPS[self.board.arch][0] if self.board.arch in ESP_CHIPS else None

    @property
    def address(self) -> int:
        return 0 if self.kind == "esp-factory" else APP_OFFSET

    def describe(self) -> str:
        what = {"esp-update": f"{self.chip} application", "esp-factory": f"{self.chip} factory image",
                "uf2": "nRF52840 UF2"}[self.kind]
        return f"Meshtastic {self.version} for {self.board.env} ({what}, {len(self.data):,} bytes)"


def read(path: Path) -> FirmwareFile:
    path = Path(path)
    m = NAME.match(path.name)
    if m is None:
        raise FlashRefused(f"{path.name}: not a Meshtastic firmware file name (firmware-<board>-<version>.bin, "
                           ".factory.bin or .uf2, as in the release zip): the board it is for cannot be known")
    board = BOARDS.get(m["board"])
    if board is None:
        raise FlashRefused(f"{path.name}: built for {m['board']!r}, a board the station does not know; "
                           f"known: {', '.join(BOARDS)}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FlashRefused(f"{path}: cannot be read ({e.strerror})") from None
    kind = {".uf2": "uf2", ".bin": "esp-update", ".factory.bin": "esp-factory"}[m["kind"]]
    f = FirmwareFile(path, board, m["version"], kind, data)
    if kind == "uf2":
        if board.arch != "nrf52840":
            raise FlashRefused(f"{path.name}: a UF2 file for {board.env}, which is flashed with a .bin")
        _check_uf2(f)
    else:
        if board.arch not in ESP_CHIPS:
            raise FlashRefused(f"{path.name}: a .bin for {board.env}, which takes the .uf2 file")
        _check_esp(f)
    return f


def esp_chip_of(image: bytes, at: int = 0) -> str | None:
    """The chip an ESP image at `at` is built for, from its extended header; None if not an image."""
    if len(image) < at + 24 or image[at] != 0xE9:
        return None
    chip_id, = struct.unpack_from("<H", image, at + 12)
    return CHIP_NAMES.get(chip_id, f"chip id {chip_id}")


def _check_esp(f: FirmwareFile) -> None:
    want = f.chip
    # A factory image starts with the second-stage bootloader, at 0x1000 on the original ESP32
    # (esptool targets/esp32.py BOOTLOADER_FLASH_OFFSET) and at 0 on the ESP32-S3.
    heads = [0] if f.kind == "esp-update" else [0x1000 if want == "ESP32" else 0, APP_OFFSET]
    for at in heads:
        got = esp_chip_of(f.data, at)
        if got is None:
            raise FlashRefused(f"{f.path.name}: no ESP image at {at:#x} (not a firmware file, or damaged)")
        if got != want:
            raise FlashRefused(f"{f.path.name}: named for {f.board.env} ({want}) but built for {got}")


def _check_uf2(f: FirmwareFile) -> None:
    data = f.data
    if not data or len(data) % 512:
        raise FlashRefused(f"{f.path.name}: not a UF2 file (not whole 512-byte blocks)")
    families = set()
    seen = set()
    total = None
    for at in range(0, len(data), 512):
        m0, m1, flags, _addr, size, n, count, fam = struct.unpack_from("<8I", data, at)
        end, = struct.unpack_from("<I", data, at + 508)
        if (m0, m1, end) != (UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END) or size > 476:
            raise FlashRefused(f"{f.path.name}: block {at // 512} is not a UF2 block (damaged file)")
        families.add(fam if flags & 0x2000 else None)
        seen.add(n)
        total = count
    if families != {UF2_FAMILY_NRF52840}:
        named = ", ".join("none" if x is None else f"{x:#010x}" for x in sorted(families, key=str))
        raise FlashRefused(f"{f.path.name}: UF2 family {named}, not the nRF52840's {UF2_FAMILY_NRF52840:#010x}")
    if seen != set(range(total or 0)):
        raise FlashRefused(f"{f.path.name}: {total} blocks announced, {len(seen)} present (a truncated copy)")


def refuse_for_radio(f: FirmwareFile, hw_model: str) -> None:
    """The radio said what it is (its handshake): a build for another board is refused."""
    if hw_model != f.board.hw_model:
        fits = [b.env for b in BOARDS.values() if b.hw_model == hw_model]
        hint = f"use a firmware-{fits[0]}-….{('uf2' if f.kind == 'uf2' else 'bin')} file" if fits else \
            "the station has no flashing table for this board"
        raise FlashRefused(f"{f.path.name} is for {f.board.env} ({f.board.hw_model}) but the radio is a "
                           f"{hw_model}: {hint}")
