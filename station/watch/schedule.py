"""Scheduled check-ins: "at least every 4 hours from 08:00 to 20:00", in the office's time zone.

The timer starts when the window opens (she need not check in at 08:00 sharp: by 12:00) and each
check-in restarts it; a deadline that would fall after the window closes is no deadline, so the
last check-in of the day carries her to the next morning. A window may run over midnight
(22:00-06:00 for a night shift). Pure arithmetic on epoch seconds; daylight-saving days are
handled by zoneinfo (a window's times are wall-clock times)."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta

HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
MIN_EVERY_S = 600.0          # a check-in more often than every 10 minutes is a leash, not a safety net


class ScheduleError(ValueError):
    pass


def parse_hhmm(text: str) -> tuple[int, int]:
    m = HHMM.match((text or "").strip())
    if not m:
        raise ScheduleError(f"a time of day is HH:MM (00:00 to 23:59), found {text!r}")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class CheckinPlan:
    every_s: float
    start: str               # "08:00"
    end: str                 # "20:00"; at or before start: the window ends the next day
    zone: str = "UTC"

    def __post_init__(self):
        sh, sm = parse_hhmm(self.start)
        eh, em = parse_hhmm(self.end)
        if not self.every_s or self.every_s < MIN_EVERY_S:
            raise ScheduleError(f"check-ins are at least {MIN_EVERY_S / 60:.0f} minutes apart")
        length = ((eh * 60 + em) - (sh * 60 + sm)) % (24 * 60) or 24 * 60
        if self.every_s > length * 60:
            raise ScheduleError(f"a check-in every {self.every_s / 3600:g} h never falls due in a window of "
                                f"{length / 60:g} h ({self.start} to {self.end})")

    def _window(self, day: date) -> tuple[float, float]:
        tz = zoneinfo.ZoneInfo(self.zone)
        (sh, sm), (eh, em) = parse_hhmm(self.start), parse_hhmm(self.end)
        start = datetime(day.year, day.month, day.day, sh, sm, tzinfo=tz)
        end_day = day if (eh, em) > (sh, sm) else day + timedelta(days=1)
        end = datetime(end_day.year, end_day.month, end_day.day, eh, em, tzinfo=tz)
        return start.timestamp(), end.timestamp()

    def windows_from(self, at: float):
        """The windows that end after `at`, in order (the one open at `at` first, if any)."""
        day = datetime.fromtimestamp(at, zoneinfo.ZoneInfo(self.zone)).date() - timedelta(days=1)
        while True:
            s, e = self._window(day)
            if e > at:
                yield s, e
            day += timedelta(days=1)

    def deadline(self, base: float) -> float:
        """When the next check-in is due, counting from `base` (her last check-in, the last missed
        deadline, or when check-ins were turned on)."""
        for s, e in self.windows_from(base):
            due = max(base, s) + self.every_s
            # A window shortened by a daylight-saving change still gets its check-in.
            if due <= e or s > base:
                return due
        raise AssertionError("unreachable: windows_from never ends")

    def describe(self) -> str:
        return f"every {self.every_s / 3600:g} h from {self.start} to {self.end}"
