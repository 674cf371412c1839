"""NMEA position sentences, from real receivers (lines taken from the gpsd corpus)."""

from __future__ import annotations

import datetime as dt

import pytest

from station.decode import nmea

# (sentence, kind, lat, lon, date) — real lines, from the logs named.
FIXES = [
    ("$GPRMC,193221.00,A,2037.7279,N,08704.0848,W,00.1,201.8,231207,01,W,A*2D", "RMC", 20.6287983, -87.06808,
     dt.date(2007, 12, 23)),                                                           # ac12.log
    ("$GPGGA,193221.00,2037.72792,N,08704.08478,W,1,04,1.7,-30.40,M,-13.9,M,,*7D", "GGA", 20.6287987, -87.0680797,
     None),                                                                            # ac12.log
    ("$GPGLL,4916.45,N,12311.12,W,225444,A,*1D", "GLL", 49.2741667, -123.1853333, None),
    ("$GNGNS,014035.00,4332.69262,S,17235.48549,E,RR,13,0.9,25.63,11.24,,*70", "GNS", -43.544877, 172.5914248, None),
]


@pytest.mark.parametrize("line, kind, lat, lon, date", FIXES)
def test_position_sentences_from_any_talker_give_a_fix(line, kind, lat, lon, date):
    fix = nmea.parse(line)
    assert (fix.kind, round(fix.lat, 7), round(fix.lon, 7), fix.date) == (kind, lat, lon, date)


@pytest.mark.parametrize("line", [
    "$GPRMC,125106,V,3854.5087,N,07726.4523,W,0.0,0.0,241011,10.5,W,S*28",   # void, simulator (GPSmap-76S)
    "$GPGGA,125106,3854.5087,N,07726.4523,W,8,10,2.0,268.8,M,-33.9,M,,*7F",  # quality 8: simulator
    "$GPGGA,,,,,,0,00,,,M,,M,,*66",                                          # no fix yet
    "$GPGSV,3,1,12,28,14,150,41,09,15,254,41,10,43,192,47,13,06,081,36*7A",  # satellites, no position
    "$PERC,GPdbg,1,3,1,0243100,0192600,0252101,0212705,0113700,0172400,0124500*55",  # proprietary
])
def test_sentences_without_a_usable_fix_give_none(line):
    assert nmea.parse(line) is None


@pytest.mark.parametrize("line, reason", [
    ("$GPRMC,193221.00,A,2037.7279,N,08704.0848,W,00.1,201.8,231207,01,W,A*2E", "bad checksum"),
    ("$GPRMC,193221.00,A,2037.7279,N,08704.0848,W,00.1,201.8,231207,01,W,A", "missing checksum"),
    ("$GPRMC,000231.099,A,4829.0005,N,00022.0015,E,0.15,212.28,2208-1,,,A*73", "bad date"),   # april6_2019.log
    ("$GPGGA,|19322|1.00,|2037.|72792,N,08704.08478,W,1,04,1.7,-30.40,M,-13.9,M,,*7D", "malformed"),  # tcp-torture
    ("!AIVDM,1,1,,A,13u?etPv2;0n:dDPwUM1U1Cb069D,0*24", "not nmea"),
    ("", "not nmea"),
])
def test_bad_lines_are_rejected_with_a_stable_reason(line, reason):
    with pytest.raises(nmea.NmeaReject) as e:
        nmea.parse(line)
    assert e.value.reason == reason


def test_sentences_are_found_inside_free_text():
    text = "SOS $GPRMC,193221.00,A,2037.7279,N,08704.0848,W,00.1,201.8,231207,01,W,A*2D please"
    assert nmea.find_sentences(text) == [text[4:-7]]
