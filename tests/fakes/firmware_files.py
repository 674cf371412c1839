"""Firmware files as the Meshtastic build writes them, small: an ESP32 application image (esptool's
image format with an esp_app_desc_t carrying the version, as ESP-IDF builds it) and an nRF52 UF2
(Microsoft's UF2 blocks with the family id bin/uf2conv.py -f 0xADA52840 sets). Named as the
release zips name them: firmware-<board>-<version>.bin | .factory.bin | .uf2."""

from __future__ import annotations

import hashlib
import random
import struct
from pathlib import Path

APP_DESC_MAGIC = 0xABCD5432
UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
NRF52840_FAMILY = 0xADA52840


def esp_app(version: str, chip_id: int = 9, size: int = 48 * 1024, seed: int = 1) -> bytes:
    """An application image: header, extended header (chip id), one segment starting with the
    app descriptor, the checksum and the appended SHA-256."""
    desc = struct.pack("<II8x", APP_DESC_MAGIC, 0) + version.encode().ljust(32, b"\0") \
        + b"firmware".ljust(32, b"\0") + b"12:00:00".ljust(16, b"\0") + b"Nov 22 2026".ljust(16, b"\0") \
        + b"v5.1.4".ljust(32, b"\0") + bytes(32) + bytes(80)
    body = desc + random.Random(seed).randbytes(size - len(desc))
    body += b"\0" * (-len(body) % 4)
    header = struct.pack("<BBBBI", 0xE9, 1, 2, 0x3F, 0x40375000)
    extended = struct.pack("<BBBBHBHH4BB", 0xEE, 0, 0, 0, chip_id, 0, 0, 99, 0, 0, 0, 0, 1)
    segment = struct.pack("<II", 0x3C000020, len(body)) + body
    image = header + extended + segment
    checksum = 0xEF
    for b in body:
        checksum ^= b
    image += b"\0" * (15 - len(image) % 16) + bytes([checksum])
    return image + hashlib.sha256(image).digest()


def esp_factory(version: str, chip_id: int = 9) -> bytes:
    """A merged image written at 0: the second-stage bootloader (at 0x1000 on the original ESP32,
    0 on the S3), then the application at 0x10000, the gaps erased (0xFF) as esptool merge-bin
    leaves them."""
    boot_at = 0x1000 if chip_id == 0 else 0
    bootloader = esp_app("bootloader", chip_id=chip_id, size=8 * 1024, seed=3)
    image = bytearray(b"\xff" * 0x10000)
    image[boot_at:boot_at + len(bootloader)] = bootloader
    return bytes(image) + esp_app(version, chip_id=chip_id)


def uf2(payload: bytes, family: int = NRF52840_FAMILY, base: int = 0x26000) -> bytes:
    chunks = [payload[i:i + 256] for i in range(0, len(payload), 256)]
    out = bytearray()
    for n, chunk in enumerate(chunks):
        data = chunk.ljust(476, b"\0")
        out += struct.pack("<8I", UF2_MAGIC0, UF2_MAGIC1, 0x2000, base + 256 * n, len(chunk), n,
                           len(chunks), family) + data + struct.pack("<I", UF2_MAGIC_END)
    return bytes(out)


def nrf_firmware(version: str, size: int = 24 * 1024, seed: int = 2) -> bytes:
    """An application whose bytes hold the version string, as the firmware's do (APP_VERSION)."""
    rng = random.Random(seed)
    return rng.randbytes(size // 2) + b"\0" + version.encode() + b"\0" + rng.randbytes(size // 2)


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path
