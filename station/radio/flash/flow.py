"""A flash as a careful technician does it: check the file against the radio, read the radio's
configuration and key, write and verify, wait for the radio to come back with the new firmware,
and put the configuration back if the new firmware lost any of it.

The configuration read first stays in memory only (it holds the private key); `station radio
backup` is the durable copy. A radio that does not answer (already broken, or in its bootloader)
can be flashed with keep_config=False: then only the file's own checks stand between it and the
wrong build.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, ContextManager

from station.radio import backup as radio_backup
from station.radio.admin import AdminRefused, RadioAdmin
from station.radio.configure import wait_for_new_handshake
from station.radio.flash import esp, uf2
from station.radio.flash.files import FirmwareFile, FlashRefused, refuse_for_radio
from station.radio.info import RadioInfo
from station.radio.link import LinkDown, RadioLink
from station.radio.ports import RadioUnavailable

Session = Callable[[], ContextManager[RadioLink]]
COME_BACK_S = 120.0      # a reboot, and an nRF52's first boot after a flash formats nothing but is slow


@dataclass
class FlashReport:
    file: FirmwareFile
    before: RadioInfo | None = None
    after: RadioInfo | None = None
    how: str = ""                    # "ESP32-S3 ROM bootloader" or "UF2 drive /media/…"
    restored: bool = False           # the configuration had to be put back
    notes: list[str] = field(default_factory=list)


def setup_of(b: radio_backup.RadioBackup) -> tuple:
    """What must survive a flash: everything but the labels (node, firmware) of the backup."""
    return b.config, b.module_config, b.channels, b.owner, b.canned


def _read(link: RadioLink) -> radio_backup.RadioBackup:
    info = link.radio_info
    try:
        return radio_backup.read(RadioAdmin(link), info.node, info.firmware, info.hw_model, info.excluded_modules)
    except (LinkDown, AdminRefused) as e:
        raise FlashRefused(f"the radio did not give its configuration ({e}): nothing was written. "
                           "Flash without keeping the configuration only if it cannot answer at all") from None


def flash(f: FirmwareFile, port: str, session: Session, *, keep_config: bool = True,
          drive_patterns: tuple[str, ...] = uf2.DRIVE_PATTERNS, say: Callable[[str], None] = lambda s: None,
          progress: esp.Progress | None = None, come_back_s: float = COME_BACK_S) -> FlashReport:
    report = FlashReport(f)
    saved = None
    if keep_config:
        try:
            with session() as link:
                report.before = link.radio_info
                refuse_for_radio(f, report.before.hw_model)
                saved = _read(link)
        except RadioUnavailable as e:
            raise FlashRefused(f"{e}: nothing was written") from None
        say(f"radio {report.before.node} ({report.before.hw_model}, firmware {report.before.firmware}): "
            f"configuration, channels and key {report.before.key_fingerprint} read")

    if f.kind == "uf2":
        before = uf2.drives(drive_patterns)
        say(f"1200-baud touch on {port}: the radio restarts into its UF2 bootloader")
        uf2.touch(port)
        try:
            drive = uf2.wait_for_drive(drive_patterns, before, 30)
        except uf2.DriveNotFound as e:
            raise esp.FlashFailed(str(e)) from None
        report.how = f"UF2 drive {drive.path} ({drive.model}, {drive.board_id})"
        say(f"bootloader drive {drive.path}: {drive.bootloader}, {drive.model}")
        uf2.copy(f, drive, progress)
    else:
        result = esp.write(port, f, progress)
        report.how = f"{result.chip} ROM bootloader"
        say(f"{result.written:,} bytes written to the {result.chip} at {f.address:#x} and verified (MD5)")

    with contextlib.ExitStack() as stack:
        link = _come_back(session, come_back_s, stack)
        if link is None:
            raise esp.FlashFailed(f"the radio did not come back on {port} within {come_back_s:.0f} s after the flash"
                                  + ("; its configuration was read before and is lost if the flash erased it:"
                                     " restore it with station radio restore" if saved else ""))
        report.after = link.radio_info
        if saved is not None and setup_of(_read(link)) != setup_of(saved):
            say("the new firmware lost part of the configuration: putting it back (the radio reboots)")
            started = time.time()
            radio_backup.write_to(RadioAdmin(link), saved)
            back = wait_for_new_handshake(link, started, 90)
            if back is None:
                raise esp.FlashFailed("the radio did not come back after its configuration was put back")
            report.after = back
            report.restored = True
    if saved is not None and report.after.key_fingerprint != report.before.key_fingerprint:
        raise esp.FlashFailed(f"after the flash the radio's key is {report.after.key_fingerprint}, "
                              f"not {report.before.key_fingerprint}: restore it with station radio restore")
    if report.after.firmware.split("-")[0] != f.version:
        report.notes.append(f"the radio reports firmware {report.after.firmware}, the file was {f.version}")
    return report


def _come_back(session: Session, timeout: float, stack: contextlib.ExitStack) -> RadioLink | None:
    """The radio's session once it answers again (kept open on `stack`), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return stack.enter_context(session())
        except (RadioUnavailable, OSError):
            time.sleep(1.0)
    return None
