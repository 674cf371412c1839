"""Time from GPS when the system clock is wrong (a Pi without a real-time clock)."""

from __future__ import annotations

import datetime as dt
import os
import time
import tty

import pytest

from station.clock import EARLIEST_PLAUSIBLE, StationClock
from station.radio.virtual.bracelets import gga, rmc

from .conftest import wait_until

NOW = 1_790_000_000.0   # 2026-09-21


class FakeTime:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


@pytest.mark.parametrize("system, gps, source", [
    (NOW, NOW + 1.0, "system"),            # within the margin: trust the system clock
    (NOW, NOW + 3600.0, "gps"),            # an hour off: GPS wins
    (86400.0, NOW, "gps"),                 # booted in 1970 after a power cut
])
def test_clock_source_follows_the_disagreement(system, gps, source):
    clock = StationClock(5.0, system_time=FakeTime(system))
    clock.observe_gps(gps)
    assert clock.status().source == source
    if source == "gps":
        assert clock.now() == pytest.approx(gps)


def test_implausible_system_clock_uses_gps_even_when_close():
    clock = StationClock(5.0, system_time=FakeTime(EARLIEST_PLAUSIBLE - 10))
    clock.observe_gps(EARLIEST_PLAUSIBLE - 9)
    assert clock.status().source == "gps"


def test_station_gps_over_a_pty_sets_position_fix_and_clock(harness, tmp_path):
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    gps_path = tmp_path / "gps"
    os.symlink(os.ttyname(slave), gps_path)
    h = harness("idle", "pty", gps={"port": str(gps_path), "store_interval_s": 0.1})
    wait_until(lambda: h.station.gps.connected, 5, what="GPS port open")
    wrong = time.time() + 7200          # the receiver says it is two hours later than we think
    os.write(master, (gga(14.6928, -17.4467, wrong) + "\r\n" + rmc(14.6928, -17.4467, wrong) + "\r\n"
                      + "$GPRMC,garbage*00\r\n").encode())
    wait_until(lambda: h.station.gps_tracker.state.fixes == 2, 5, what="two fixes")
    st = h.station.clock.status()
    assert st.source == "gps" and st.offset_s == pytest.approx(7200, abs=2)
    # A step of the station's time: taken once this run's timers have moved with it.
    wait_until(lambda: h.station.clock.steps_taken == 1, 10, what="the station to take the GPS time")
    assert h.station.clock.now() == pytest.approx(wrong, abs=2)
    assert h.station.gps_tracker.state.rejects["bad checksum"] == 1
    assert (h.station.gps_tracker.state.quality, h.station.gps_tracker.state.sats) == (1, 8)
    wait_until(lambda: h.count("SELECT COUNT(*) FROM positions WHERE source='station_gps'") >= 1, 5,
               what="station position stored")
    fix_day = h.station.gps_tracker.state.fix_datetime.date()
    assert fix_day == dt.datetime.fromtimestamp(wrong, dt.timezone.utc).date()
    os.close(master)
    os.close(slave)


def test_a_step_is_held_back_until_the_timers_have_moved_and_drift_is_followed():
    wall, mono = FakeTime(NOW), FakeTime(100.0)
    steps = []
    clock = StationClock(5.0, system_time=wall, monotonic=mono, on_step=steps.append)
    wall.t, mono.t = NOW + 10.3, 110.0            # 0.3 s of drift (NTP slewing): followed
    assert clock.now() == pytest.approx(NOW + 10.3)
    wall.t, mono.t = NOW + 7211.3, 111.0          # `date -s` two hours ahead
    assert clock.now() == pytest.approx(NOW + 11.3) and steps == [pytest.approx(7200.0)]
    assert clock.now() == pytest.approx(NOW + 11.3) and len(steps) == 1     # told once
    clock.adopt(clock.pending_step())
    assert clock.now() == pytest.approx(NOW + 7211.3) and clock.pending_step() == 0.0
