"""Where the radio is now. A USB radio is unplugged and plugged back, comes back as ttyUSB1 where
it was ttyUSB0, or is plugged in only after the station started (on the virtual radio, for want
of one): the station follows it instead of waiting on a path that no longer leads anywhere.

`auto`: the udev rule's name (/dev/meshtastic), else any serial port whose USB ids are a known
radio's (the same list as hardware/udev/99-station.rules), else the given globs. An explicit path
that disappears: the port with the same USB serial number, else the only port with the same
USB ids. pyserial's list_ports reads those from sysfs.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Callable

from station.radio.ports import AUTO_RADIO_PATH

# (vendor, product) of the station radios hardware/bom.md lists; test_hardware keeps them equal
# to the udev rules.
RADIO_USB_IDS = frozenset({(0x239A, 0x8029), (0x10C4, 0xEA60), (0x1A86, 0x55D4), (0x303A, 0x1001)})


@dataclass(frozen=True)
class PortInfo:
    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None

    @property
    def is_radio(self) -> bool:
        return (self.vid, self.pid) in RADIO_USB_IDS


def usb_ports() -> list[PortInfo]:
    from serial.tools import list_ports
    return [PortInfo(p.device, p.vid, p.pid, p.serial_number) for p in list_ports.comports()]


class RadioFinder:
    def __init__(self, configured: str, *, candidates: tuple[str, ...] = (AUTO_RADIO_PATH,),
                 globs: tuple[str, ...] = (), lister: Callable[[], list[PortInfo]] = usb_ports):
        self.configured = configured
        self.candidates = candidates
        self.globs = globs
        self.lister = lister
        self.identity: PortInfo | None = None     # what answered at the last connection

    @property
    def auto(self) -> bool:
        return self.configured == "auto"

    def find(self) -> str | None:
        """A port to open now, or None when no radio is there."""
        if not self.auto:
            if os.path.exists(self.configured):
                return self.configured
            return self._same_radio_elsewhere()
        for path in self.candidates:
            if os.path.exists(path):
                return path
        ports = self._ports()
        for p in ports:
            if p.is_radio:
                return p.device
        for pattern in self.globs:
            found = sorted(glob.glob(pattern))
            if found:
                return found[0]
        return self._same_radio_elsewhere()

    def remember(self, path: str) -> None:
        """The radio answered at `path`: remember its USB identity, to find it again."""
        real = os.path.realpath(path)
        for p in self._ports():
            if os.path.realpath(p.device) == real:
                self.identity = p
                return

    def _same_radio_elsewhere(self) -> str | None:
        me = self.identity
        if me is None or me.vid is None:
            return None
        ports = self._ports()
        if me.serial_number:
            match = [p for p in ports if p.serial_number == me.serial_number and (p.vid, p.pid) == (me.vid, me.pid)]
        else:
            match = [p for p in ports if (p.vid, p.pid) == (me.vid, me.pid)]
        return match[0].device if len(match) == 1 else None

    def _ports(self) -> list[PortInfo]:
        try:
            return self.lister()
        except Exception:         # sysfs unreadable in a container: only the paths are known
            return []
