"""An ESP32 board as esptool meets it: Meshtastic firmware until the host resets it into the ROM
bootloader, then the ROM's serial download protocol over SLIP, without the flasher stub.

What the ROM answers is taken from esptool itself (github:espressif/esptool v5, the client the
station uses, esptool/loader.py): a request is `<BBHI` (0, op, length, checksum) and data; a reply
`<BBHI` (1, op, length, value) and data ending in four status bytes (status, error, 0, 0) on the
ESP32 and ESP32-S3 ROMs. The commands are the ROM's: SYNC, READ_REG, WRITE_REG, SPI_ATTACH,
SPI_SET_PARAMS, FLASH_BEGIN/DATA/END, SPI_FLASH_MD5 (32 hex characters from the ROM), CHANGE_BAUDRATE
and, on the ESP32-S3 only, GET_SECURITY_INFO (esptool tells the chips apart by it, or by the magic
value at 0x40001000 on the original ESP32). SPI flash commands (JEDEC id, SFDP, status) run through
the SPI peripheral's user-command registers, as esptool's run_spiflash_command drives them.

A pty carries no DTR/RTS, so the board's auto-reset circuit is modelled by its two visible effects:
the first SYNC frame puts the board in download mode (esptool's reset would have), and the host
closing the port after writing to flash boots what is in flash (esptool's hard reset would have).
The firmware it boots is the application at 0x10000 (bin/device-update.sh UPDATE_OFFSET): its
esp_app_desc_t version becomes the radio's firmware version; an image that is not an application
for this chip does not boot and the board stays silent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import struct
import threading

from station.radio.virtual.device import VirtualRadio
from station.radio.virtual.transports import PtyPort

log = logging.getLogger(__name__)

SYNC, READ_REG, WRITE_REG = 0x08, 0x0A, 0x09
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0F
SPI_FLASH_MD5, GET_SECURITY_INFO = 0x13, 0x14
INVALID_COMMAND = 0x05            # loader.py ROM_INVALID_RECV_MSG

APP_OFFSET = 0x10000
APP_DESC_MAGIC = 0xABCD5432       # esp_app_format.h: esp_app_desc_t.magic_word
SYNC_FRAME = b"\xc0\x00\x08\x24\x00"


@dataclasses.dataclass(frozen=True)
class Chip:
    name: str
    image_chip_id: int                # the image header's chip id (esptool targets IMAGE_CHIP_ID)
    magic: int | None                 # read at 0x40001000; None: told by GET_SECURITY_INFO instead
    spi_base: int
    usr: int
    usr2: int
    w0: int
    flash_begin_words: int            # FLASH_BEGIN has a fifth word (encrypted) except on the ESP32


# esptool/targets/esp32.py and esp32s3.py.
CHIPS = {
    "ESP32": Chip("ESP32", 0, 0x00F01D83, 0x3FF42000, 0x1C, 0x24, 0x80, 4),
    "ESP32-S3": Chip("ESP32-S3", 9, None, 0x60002000, 0x18, 0x20, 0x58, 5),
}
JEDEC_IDS = {4 << 20: 0x1640EF, 8 << 20: 0x1740EF, 16 << 20: 0x1840EF}   # Winbond W25Q32/64/128


def slip(data: bytes) -> bytes:
    return b"\xc0" + data.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def app_version(image: bytes | bytearray, chip: Chip) -> str | None:
    """The version in an application image's esp_app_desc_t, if it is an application for `chip`."""
    if len(image) < 24 + 8 + 48 or image[0] != 0xE9:
        return None
    chip_id = struct.unpack_from("<H", image, 12)[0]
    if chip_id != chip.image_chip_id:
        return None
    magic, = struct.unpack_from("<I", image, 24 + 8)
    if magic != APP_DESC_MAGIC:
        return None
    return bytes(image[24 + 8 + 16: 24 + 8 + 48]).split(b"\0")[0].decode("ascii", "replace")


class EspBoard:
    """What the pty is plugged into: the board, which passes bytes to the Meshtastic firmware or,
    in download mode, to its ROM."""

    def __init__(self, radio: VirtualRadio, link: str, chip: str = "ESP32-S3", flash_mb: int = 8):
        self.radio = radio
        self.chip = CHIPS[chip]
        self.flash = bytearray(b"\xff" * (flash_mb << 20))
        self.download_mode = False
        self.writes = 0                           # FLASH_DATA blocks written since power-up
        self.boots: list[str | None] = []         # what each boot after a flash found at 0x10000
        # Fault: the new build cannot load the old config files and installs its defaults, with a
        # new key (NodeDB.cpp:1308-1311 loadFromDisk, v2.7.26).
        self.forgets_config = False
        self._regs: dict[int, int] = {}
        self._buf = bytearray()
        self._pending_write: tuple[int, int, int] | None = None   # offset, blocks, block size
        self._lock = threading.Lock()
        self.port = PtyPort(self, link)

    # -- what PtyPort calls --------------------------------------------------------------------
    def attach(self, transport) -> None:
        self._transport = transport
        self.radio.attach(transport if not self.download_mode else None)

    def host_present(self, present: bool) -> None:
        if not present and self.download_mode and self.writes:
            self._boot()
            return
        if not self.download_mode:
            self.radio.host_present(present)

    def feed(self, data: bytes) -> None:
        with self._lock:
            if not self.download_mode:
                if SYNC_FRAME not in data:
                    self.radio.feed(data)
                    return
                self._enter_download_mode()
            self._buf += data
            self._frames()

    # -- download mode -------------------------------------------------------------------------
    def _enter_download_mode(self) -> None:
        log.info("virtual %s: reset into the ROM bootloader", self.chip.name)
        self.download_mode = True
        self.radio.attach(None)
        self._buf.clear()

    def _boot(self) -> None:
        version = app_version(self.flash[APP_OFFSET:], self.chip)
        self.boots.append(version)
        self.download_mode = False
        self.writes = 0
        if version is None:
            log.warning("virtual %s: no application for this chip at 0x%x: it does not boot",
                        self.chip.name, APP_OFFSET)
            return
        if self.forgets_config:
            self.radio.factory_reset(full=True)
        self.radio.boot_image(version)
        self.radio.attach(self._transport)

    def _frames(self) -> None:
        while True:
            start = self._buf.find(0xC0)
            if start < 0:
                self._buf.clear()
                return
            end = self._buf.find(0xC0, start + 1)
            if end < 0:
                del self._buf[:start]
                return
            raw = bytes(self._buf[start + 1:end])
            del self._buf[:end]          # the closing 0xC0 may open the next frame
            if not raw:
                continue
            self._request(raw.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb"))

    def _reply(self, op: int, value: int = 0, data: bytes = b"", status: int = 0, error: int = 0) -> None:
        body = data + bytes([status, error, 0, 0])
        self._transport.send(slip(struct.pack("<BBHI", 1, op, len(body), value) + body))

    def _request(self, raw: bytes) -> None:
        if len(raw) < 8 or raw[0] != 0:
            return
        _, op, size, chk = struct.unpack_from("<BBHI", raw)
        data = raw[8:8 + size]
        handler = {SYNC: self._sync, READ_REG: self._read_reg, WRITE_REG: self._write_reg,
                   SPI_ATTACH: self._ok, SPI_SET_PARAMS: self._ok, CHANGE_BAUDRATE: self._ok,
                   FLASH_BEGIN: self._flash_begin, FLASH_DATA: self._flash_data, FLASH_END: self._ok,
                   SPI_FLASH_MD5: self._md5, GET_SECURITY_INFO: self._security_info}.get(op)
        if handler is None or (op == GET_SECURITY_INFO and self.chip.magic is not None):
            self._reply(op, status=1, error=INVALID_COMMAND)
            return
        handler(op, data, chk)

    def _ok(self, op: int, data: bytes, chk: int) -> None:
        self._reply(op)

    def _sync(self, op: int, data: bytes, chk: int) -> None:
        if data != b"\x07\x07\x12\x20" + 32 * b"\x55":
            return
        for _ in range(8):                  # the ROM answers a SYNC eight times
            self._reply(op, value=0x20120707)

    def _read_reg(self, op: int, data: bytes, chk: int) -> None:
        addr, = struct.unpack_from("<I", data)
        if addr == 0x40001000 and self.chip.magic is not None:
            value = self.chip.magic
        else:
            value = self._regs.get(addr, 0)
        self._reply(op, value=value)

    def _write_reg(self, op: int, data: bytes, chk: int) -> None:
        addr, value, mask, _delay = struct.unpack_from("<IIII", data)
        old = self._regs.get(addr, 0)
        self._regs[addr] = (old & ~mask) | (value & mask)
        if addr == self.chip.spi_base and value & (1 << 18):
            self._spi_user_command()
        self._reply(op)

    def _spi_user_command(self) -> None:
        """The flash chip answers the command byte in USR2; the USR bit clears when it is done."""
        command = self._regs.get(self.chip.spi_base + self.chip.usr2, 0) & 0xFF
        w0 = self.chip.spi_base + self.chip.w0
        if command == 0x9F:                                 # RDID
            self._regs[w0] = JEDEC_IDS.get(len(self.flash), 0x1740EF)
        elif command == 0x5A:                               # read SFDP: the "SFDP" signature
            self._regs[w0] = 0x50444653
        else:                                               # status registers and the rest
            self._regs[w0] = 0
        self._regs[self.chip.spi_base] = 0

    def _security_info(self, op: int, data: bytes, chk: int) -> None:
        self._reply(op, data=struct.pack("<IB7BII", 0, 0, *([0] * 7), self.chip.image_chip_id, 0))

    def _flash_begin(self, op: int, data: bytes, chk: int) -> None:
        if len(data) != 4 * self.chip.flash_begin_words:
            self._reply(op, status=1, error=INVALID_COMMAND)
            return
        erase, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if offset + erase > len(self.flash):
            self._reply(op, status=1, error=0x06)
            return
        self.flash[offset:offset + erase] = b"\xff" * erase        # the ROM erases up front
        self._pending_write = (offset, blocks, block_size)
        self._reply(op)

    def _flash_data(self, op: int, data: bytes, chk: int) -> None:
        if self._pending_write is None or len(data) < 16:
            self._reply(op, status=1, error=INVALID_COMMAND)
            return
        size, seq, _, _ = struct.unpack_from("<IIII", data)
        block = data[16:16 + size]
        state = 0xEF
        for b in block:
            state ^= b
        if state != chk or len(block) != size:
            self._reply(op, status=1, error=0x07)            # checksum error: esptool retries
            return
        offset, _blocks, block_size = self._pending_write
        at = offset + seq * block_size
        self.flash[at:at + size] = block
        self.writes += 1
        self._reply(op)

    def _md5(self, op: int, data: bytes, chk: int) -> None:
        addr, size, _, _ = struct.unpack_from("<IIII", data)
        digest = hashlib.md5(bytes(self.flash[addr:addr + size])).hexdigest().encode()
        self._reply(op, data=digest)

