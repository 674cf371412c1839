"""The station's idea of the time: the system clock, or GPS time when the system clock is wrong.

A Raspberry Pi has no real-time clock: after a power cut with no internet it boots with the
time it last saved (or 1970). Evidence needs true times, so when a GPS fix disagrees with the
system clock by more than a margin, timestamps are taken from GPS time and the status says so.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

# Before this moment the system clock cannot be right: this software did not exist yet.
EARLIEST_PLAUSIBLE = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp()


@dataclass(frozen=True)
class ClockStatus:
    source: str              # "system" or "gps"
    offset_s: float          # added to the system clock when the source is gps
    last_gps_delta_s: float | None
    system_plausible: bool


class StationClock:
    def __init__(self, margin_s: float = 5.0, system_time=time.time, monotonic=time.monotonic):
        self.margin_s = margin_s
        self._system_time = system_time
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._offset = 0.0
        self._source = "system"
        self._last_delta: float | None = None

    def now(self) -> float:
        return self._system_time() + self._offset

    def observe_gps(self, gps_utc: float, received_monotonic: float | None = None) -> None:
        """A GPS fix said it was `gps_utc` (Unix seconds) when its line arrived."""
        lag = 0.0 if received_monotonic is None else max(0.0, self._monotonic() - received_monotonic)
        delta = (gps_utc + lag) - self._system_time()
        with self._lock:
            self._last_delta = delta
            if not self.system_plausible() or abs(delta) > self.margin_s:
                self._source, self._offset = "gps", delta
            else:
                self._source, self._offset = "system", 0.0

    def system_plausible(self) -> bool:
        return self._system_time() >= EARLIEST_PLAUSIBLE

    def status(self) -> ClockStatus:
        with self._lock:
            return ClockStatus(self._source, self._offset, self._last_delta, self.system_plausible())
