"""The station's own GPS receiver on a serial port: position, fix quality, satellites, UTC time.

`GpsTracker` is the pure part (lines in, state out) so recorded logs can be replayed through
it; `GpsReader` owns the serial port, reopens it when the receiver is unplugged, and feeds the
tracker. Bad lines are counted by reason and never stop the reader.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pynmea2
import serial

from station.clock import StationClock
from station.decode import nmea

log = logging.getLogger(__name__)


@dataclass
class GpsState:
    fix: nmea.Fix | None = None
    fix_datetime: dt.datetime | None = None
    fix_monotonic: float | None = None
    quality: int | None = None
    sats: int | None = None
    date: dt.date | None = None
    lines: int = 0
    fixes: int = 0
    rejects: collections.Counter = field(default_factory=collections.Counter)

    def summary(self) -> dict:
        f = self.fix
        return {
            "fix": None if f is None else {
                "lat": round(f.lat, 7), "lon": round(f.lon, 7), "kind": f.talker + f.kind,
                "time": self.fix_datetime.isoformat() if self.fix_datetime else
                (f.time.strftime("%H:%M:%S") if f.time else None),
                "age_s": None if self.fix_monotonic is None else round(time.monotonic() - self.fix_monotonic, 1),
            },
            "quality": self.quality, "sats": self.sats, "lines": self.lines, "fixes": self.fixes,
            "rejects": dict(self.rejects),
        }


class GpsTracker:
    def __init__(self, clock: StationClock | None = None):
        self.clock = clock
        self.state = GpsState()

    def feed_line(self, raw: bytes | str, received_monotonic: float | None = None) -> nmea.Fix | None:
        st = self.state
        st.lines += 1
        if isinstance(raw, bytes):
            try:
                line = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                st.rejects["not ascii"] += 1
                return None
        else:
            line = raw.strip()
        if not line:
            st.lines -= 1
            return None
        if line.startswith("$") and line[3:6] == "ZDA":
            self._zda(line)
            return None
        try:
            fix = nmea.parse(line)
        except nmea.NmeaReject as e:
            st.rejects[e.reason] += 1
            return None
        if line[3:6] == "GGA":
            self._gga_quality(line)
        if fix is None:
            return None
        if fix.date is not None:
            st.date = fix.date
        when = fix.datetime
        if when is None and fix.time is not None and st.date is not None:
            when = dt.datetime.combine(st.date, fix.time.replace(tzinfo=None), tzinfo=dt.timezone.utc)
        st.fix, st.fix_datetime = fix, when
        st.fix_monotonic = received_monotonic if received_monotonic is not None else time.monotonic()
        if fix.sats is not None:
            st.sats = fix.sats
        st.fixes += 1
        # Only a sentence that carries its own date sets the clock: a GGA time with a date
        # remembered from earlier could be a day off around midnight.
        if self.clock is not None and fix.kind == "RMC" and fix.datetime is not None:
            self.clock.observe_gps(fix.datetime.timestamp(), st.fix_monotonic)
        return fix

    def _zda(self, line: str) -> None:
        try:
            msg = pynmea2.parse(line, check=True)
            if msg.year and msg.month and msg.day:
                self.state.date = dt.date(int(msg.year), int(msg.month), int(msg.day))
        except (pynmea2.ParseError, pynmea2.ChecksumError, ValueError, TypeError, AttributeError):
            self.state.rejects["bad ZDA"] += 1

    def _gga_quality(self, line: str) -> None:
        fields = line.split("*")[0].split(",")
        if len(fields) > 7:
            try:
                self.state.quality = int(fields[6]) if fields[6] else None
                self.state.sats = int(fields[7]) if fields[7] else self.state.sats
            except ValueError:
                pass


class GpsReader:
    """Reads the receiver in its own thread; `on_fix(fix, when)` gets each new fix."""

    def __init__(self, port: str, baud: int, tracker: GpsTracker,
                 on_fix: Callable[[nmea.Fix, dt.datetime | None], None] | None = None):
        self.port = port
        self.baud = baud
        self.tracker = tracker
        self.on_fix = on_fix or (lambda f, w: None)
        self.error = ""
        self.connected = False
        self.alive_at = time.monotonic()
        self.bytes_read = 0
        self.bytes_handled = 0      # read and every complete line in them fed to the tracker
        self._serial: serial.Serial | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gps-reader", daemon=True)

    def start(self) -> "GpsReader":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        ser = self._serial
        if ser is not None:
            try:
                ser.cancel_read()   # a blocking read would otherwise hold shutdown for its timeout
            except Exception:
                pass
        self._thread.join(3)

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with serial.Serial(self.port, self.baud, timeout=0.5) as ser:
                    self._serial = ser
                    self.connected, self.error, delay = True, "", 0.5
                    self._read(ser)
            except (serial.SerialException, OSError) as e:
                if self.error != str(e):
                    log.warning("GPS on %s unavailable: %s", self.port, e)
                self.error = str(e)
            self.connected = False
            self._serial = None
            self._stop.wait(delay)
            delay = min(delay * 2, 30)

    def _read(self, ser: serial.Serial) -> None:
        buf = b""
        while not self._stop.is_set():
            self.alive_at = time.monotonic()
            chunk = ser.read(ser.in_waiting or 1)
            if not chunk:
                continue
            self.bytes_read += len(chunk)
            buf += chunk
            if len(buf) > 4096 and b"\n" not in buf:
                self.tracker.state.rejects["line too long"] += 1
                buf = b""
            *lines, buf = buf.split(b"\n")
            now = time.monotonic()
            for line in lines:
                try:
                    fix = self.tracker.feed_line(line, now)
                    if fix is not None:
                        self.on_fix(fix, self.tracker.state.fix_datetime)
                except Exception:  # one strange line must never end the reader
                    self.tracker.state.rejects["internal error"] += 1
                    log.exception("GPS line could not be handled: %r", line[:120])
            self.bytes_handled += len(chunk)
