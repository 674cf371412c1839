"""The radio link's liveness check against real firmware: a healthy radio on a quiet mesh is never
taken for a hung one (firmware before 2.7.4 never answers a heartbeat: PhoneAPI.cpp:216-234),
and a radio that really hangs is still noticed, whatever its firmware."""

from __future__ import annotations

import time

import pytest

from station.config import validate

from .conftest import FIRMWARE, wait_until

QUIET_S = 300.0


@pytest.mark.slow
@pytest.mark.parametrize("firmware", FIRMWARE)
def test_a_quiet_mesh_never_looks_like_a_hung_radio(harness, firmware):
    h = harness("idle", "pty", firmware=firmware)
    link, radio = h.station.link, h.sim.radio
    # Twenty liveness windows of the test's settings (heartbeat 0.5 s, silence allowed 2 s).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert link.state.connects == 1 and link.state.hangs == 0, link.state
        time.sleep(0.1)
    assert link.probes >= 15
    if firmware in ("2.6.11", "2.7.3"):
        # Silent to heartbeats: the station asked for the metadata instead, and was answered.
        assert radio.counters.heartbeats_answered == 0
        assert link.radio_info is not None and not link.radio_info.answers_heartbeat
    else:
        assert radio.counters.heartbeats_answered >= 15
    # Probe answers are the station's business: none is stored as mesh traffic.
    assert h.count("SELECT COUNT(*) FROM packets") == 0


@pytest.mark.parametrize("firmware", FIRMWARE)
def test_a_hung_radio_is_detected_and_the_link_restarted_on_every_firmware(harness, firmware):
    h = harness("idle", "pty", firmware=firmware)
    link = h.station.link
    h.sim.radio.hang()
    wait_until(lambda: link.state.hangs == 1, 10, what="hang detection")
    h.sim.stage.press("amina")            # heard by the radio while its serial side is hung
    h.sim.radio.unhang()
    wait_until(lambda: link.connected and link.state.connects == 2, 10, what="restart after hang")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents") == 1, 10, what="alert after recovery")


def test_default_settings_detect_a_hang_within_sixty_seconds():
    radio = validate({}).radio
    assert radio["liveness_timeout_s"] + radio["heartbeat_s"] <= 60


@pytest.mark.slow
@pytest.mark.background
def test_five_quiet_minutes_on_firmware_2_6_11_with_the_default_settings_cause_no_reconnect(quiet_station):
    """Started when the session began (tests/conftest.py), so that its five minutes of real time
    pass while the other tests run; the default liveness settings, as a Pi runs them."""
    station, sim, started = quiet_station
    remaining = started + QUIET_S - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    state = station.link.state
    assert (state.connects, state.hangs, state.status) == (1, 0, "connected")
    assert station.link.probes >= QUIET_S / 15 - 1
    assert sim.radio.counters.heartbeats_answered == 0 and sim.radio.profile.name == "2.6.11"
