"""NMEA 0183 position sentences (RMC, GGA, GLL, GNS from any talker), checksum verified.

Used for the station's own GPS and for NMEA carried inside bracelet payloads. Every line
either yields a `Fix`, is recognised as a sentence without a position (`None`), or raises
`NmeaReject` with a short, stable reason that the caller counts.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pynmea2

POSITION_TYPES = ("RMC", "GGA", "GLL", "GNS")
# GGA quality 7 is a position typed in by hand and 8 a simulator's: neither is where we are.
REAL_FIX_QUALITIES = (1, 2, 3, 4, 5, 6)
NOT_A_FIX_MODES = ("N", "S", "M")
# A sentence inside free text: talker + type, fields, and a checksum. '!' starts AIS lines.
_IN_TEXT = re.compile(r"\$[A-Z]{2}[A-Z]{3},[\x20-\x7e]*?\*[0-9A-Fa-f]{2}")
_POSITION = re.compile(r"^\$([A-Z][A-Z0-9])(RMC|GGA|GLL|GNS),")


class NmeaReject(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason if not detail else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Fix:
    kind: str                      # RMC, GGA, GLL or GNS
    talker: str
    lat: float
    lon: float
    time: dt.time | None           # UTC time of day
    date: dt.date | None           # only RMC carries a date
    alt: float | None = None
    sats: int | None = None
    quality: int | None = None     # GGA fix quality (1 GPS, 2 DGPS, 4/5 RTK, 6 estimated)

    @property
    def datetime(self) -> dt.datetime | None:
        if self.time is None or self.date is None:
            return None
        return dt.datetime.combine(self.date, self.time.replace(tzinfo=None), tzinfo=dt.timezone.utc)


def find_sentences(text: str) -> list[str]:
    """NMEA sentences embedded in a text payload (they may share it with an alert keyword)."""
    return _IN_TEXT.findall(text)


def _float(v: str) -> float | None:
    try:
        return float(v) if v not in ("", None) else None
    except ValueError:
        return None


def _int(v: str) -> int | None:
    try:
        return int(v) if v not in ("", None) else None
    except ValueError:
        return None


def parse(line: str) -> Fix | None:
    """A fix, None for a valid sentence with no position fix, or NmeaReject."""
    line = line.strip()
    if not line.startswith("$"):
        raise NmeaReject("not nmea")
    shape = _POSITION.match(line)
    if not shape:
        return None  # satellites, proprietary ($P...) and vendor sentences carry no position
    talker, kind = shape.groups()
    if "*" not in line:
        raise NmeaReject("missing checksum")
    try:
        msg = pynmea2.parse(line, check=True)
    except pynmea2.ChecksumError:
        raise NmeaReject("bad checksum") from None
    except (pynmea2.ParseError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise NmeaReject("malformed", str(e)[:80]) from None
    try:
        return _fix_from(msg, kind, talker)
    except NmeaReject:
        raise
    except (ValueError, TypeError, AttributeError, IndexError) as e:
        # pynmea2 computes fields lazily; a truncated field only fails here.
        raise NmeaReject("malformed", str(e)[:80]) from None


def _fix_from(msg, kind: str, talker: str) -> Fix | None:
    if kind == "RMC":
        # NMEA 2.3 adds a mode: N no fix, S simulator, M manual input; none of them is a fix.
        mode = msg.data[11] if len(msg.data) > 11 else ""
        if msg.status != "A" or mode in NOT_A_FIX_MODES:
            return None
        date = msg.datestamp if msg.data[8] else None
        if date is not None and not isinstance(date, dt.date):
            raise NmeaReject("bad date", str(msg.data[8])[:20])
        return _checked(Fix(kind, talker, msg.latitude, msg.longitude, _time(msg), date), msg)
    if kind == "GGA":
        qual = _int(msg.data[5])
        if not qual or qual not in REAL_FIX_QUALITIES:
            return None
        return _checked(Fix(kind, talker, msg.latitude, msg.longitude, _time(msg), None,
                            alt=_float(msg.data[8]), sats=_int(msg.data[6]), quality=qual), msg)
    if kind == "GLL":
        status = msg.data[5] if len(msg.data) > 5 else ""
        mode = msg.data[6] if len(msg.data) > 6 else ""
        if status != "A" or mode in NOT_A_FIX_MODES:
            return None
        return _checked(Fix(kind, talker, msg.latitude, msg.longitude, _time(msg), None), msg)
    # GNS: the mode field has one letter per constellation; all 'N' means no fix.
    mode = msg.data[5] if len(msg.data) > 5 else ""
    if not mode or set(mode) <= set(NOT_A_FIX_MODES):
        return None
    return _checked(Fix(kind, talker, msg.latitude, msg.longitude, _time(msg), None,
                        alt=_float(msg.data[8]) if len(msg.data) > 8 else None,
                        sats=_int(msg.data[6]) if len(msg.data) > 6 else None), msg)


def _time(msg) -> dt.time | None:
    t = msg.timestamp
    if t is None or isinstance(t, dt.time):
        return t
    raise NmeaReject("bad time", str(t)[:20])


def _checked(fix: Fix, msg) -> Fix:
    lat_field = msg.lat if hasattr(msg, "lat") else ""
    if not lat_field:
        raise NmeaReject("no position in fix")
    if not (-90 <= fix.lat <= 90 and -180 <= fix.lon <= 180):
        raise NmeaReject("position out of range")
    return fix
