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


# A difference from the running time larger than this is a step of the clock (NTP or GPS setting
# it, someone's `date -s`), not drift: durations must not feel it (see StationClock).
STEP_S = 1.0


@dataclass(frozen=True)
class ClockStatus:
    source: str              # "system" or "gps"
    offset_s: float          # added to the system clock when the source is gps
    last_gps_delta_s: float | None
    system_plausible: bool
    pending_step_s: float = 0.0   # a step seen and not yet taken (timers are being moved)


class SystemClock:
    """The system's time, for what has no GPS and no database of its own to keep steps for (the
    hub, a benchmark's stations): the same now() as StationClock."""

    @staticmethod
    def now() -> float:
        return time.time()


class StationClock:
    """Timestamps that run on the monotonic clock between steps.

    Every timer the station keeps (fold window, verification delay, retry backoff, rate windows,
    429 resets, receipt expiry, lockouts) is a stored timestamp compared with now(). A wall clock
    that jumps 2 h ahead would publish an alert held for 30 minutes at once; 2 h back, a retry due
    in 2 s would wait 2 hours. So now() follows the system clock (or GPS) only through drift; a
    step is held back (`pending_step`) until `adopt` is called, which the daemon does once every
    timestamp this run wrote has been moved by the same step (storage/timebase.py). Without
    `on_step` (a command, a test) a step is taken at once, as the system clock does.
    """

    def __init__(self, margin_s: float = 5.0, system_time=time.time, monotonic=time.monotonic,
                 on_step=None):
        self.margin_s = margin_s
        self._system_time = system_time
        self._monotonic = monotonic
        self._on_step = on_step
        self._lock = threading.Lock()
        self._offset = 0.0
        self._source = "system"
        self._last_delta: float | None = None
        self._base = system_time() - monotonic()       # now() = base + monotonic()
        self._pending = 0.0
        self.steps_taken = 0
        # The first timestamp this run wrote, on its own (moving) scale: where a step's move starts.
        self.run_started = self._base + monotonic()

    def now(self) -> float:
        step = None
        with self._lock:
            running = self._base + self._monotonic()
            diff = self._system_time() + self._offset - running
            if abs(diff) <= STEP_S or self._on_step is None:
                self._base += diff
                if abs(diff) > STEP_S:
                    self.run_started += diff
                    self.steps_taken += 1
                self._pending = 0.0
                return running + diff
            if abs(diff - self._pending) > STEP_S:
                self._pending = step = diff
        if step is not None:
            self._on_step(step)
        return running

    def pending_step(self) -> float:
        """The step (seconds) seen and not yet taken; 0.0 when none."""
        self.now()
        with self._lock:
            return self._pending

    def adopt(self, step: float) -> None:
        """Take a step: everything this run stamped has been moved by it."""
        with self._lock:
            self._base += step
            self.run_started += step
            self._pending = 0.0
            self.steps_taken += 1

    def minus_system(self) -> float:
        """This clock minus the system clock: what the console and the commands add to theirs."""
        return self.now() - self._system_time()

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
        pending = self.pending_step()
        with self._lock:
            return ClockStatus(self._source, self._offset, self._last_delta, self.system_plausible(), pending)
