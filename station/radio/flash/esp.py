"""ESP32 boards through esptool used as a library, talking to the chip's ROM bootloader (no
flasher stub is uploaded: fewer moving parts, and what the ROM does is fixed in silicon).

The chip is detected first and a file built for another chip is refused before the first write;
esptool verifies what it wrote with the flash's MD5 and a mismatch is an error. Then the board is
reset into its new firmware (RTS), and the port closed.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, Iterator

from esp_pylib.logger import EspLog
from esptool import cmds as esp_cmds
from esptool.logger import TemplateLogger, log as esp_log
from esptool.util import FatalError

from station.radio.flash.files import FirmwareFile, FlashRefused

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]     # (done, total) in bytes


class FlashFailed(Exception):
    """The write or its verification failed; the message says where."""


@dataclass
class EspResult:
    chip: str
    written: int


class _ToLogging(TemplateLogger):
    """esptool's messages go to our log; its progress bar to the caller's."""

    def __init__(self, progress: Progress | None):
        self.progress = progress

    def print(self, *args, **kwargs):
        text = " ".join(str(a) for a in args).strip()
        if text:
            log.info("esptool: %s", text)

    def note(self, message):
        log.info("esptool: %s", message)

    def warning(self, message):
        log.warning("esptool: %s", message)

    def error(self, message):
        log.error("esptool: %s", message)

    def stage(self, finish=False):
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
        if self.progress is not None:
            self.progress(cur_iter, total_iters)

    def set_verbosity(self, verbosity):
        pass


@contextlib.contextmanager
def _esptool_logging(progress: Progress | None) -> Iterator[None]:
    # esptool keeps one logger for the process; it is ours only while we flash.
    before = EspLog.instance
    esp_log.set_logger(_ToLogging(progress))
    try:
        yield
    finally:
        EspLog.instance = before


def write(port: str, f: FirmwareFile, progress: Progress | None = None, baud: int = 115200) -> EspResult:
    with _esptool_logging(progress):
        try:
            esp = esp_cmds.detect_chip(port, baud, "default-reset", connect_attempts=3)
        except (FatalError, OSError) as e:
            raise FlashFailed(f"no ESP32 bootloader answered on {port}: {e}. Hold BOOT while pressing RESET "
                              "(or plug in with BOOT held) and try again") from None
        try:
            if esp.CHIP_NAME != f.chip:
                raise FlashRefused(f"{f.path.name} is built for {f.chip} but the chip on {port} is "
                                   f"{esp.CHIP_NAME}: nothing was written")
            esp_cmds.attach_flash(esp)
            esp_cmds.write_flash(esp, [(f.address, f.data)], no_compress=True)
            esp_cmds.reset_chip(esp, "hard-reset")
            return EspResult(esp.CHIP_NAME, len(f.data))
        except FatalError as e:
            raise FlashFailed(f"flashing {f.path.name} failed: {e}") from None
        finally:
            with contextlib.suppress(Exception):
                esp._port.close()
