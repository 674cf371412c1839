"""What a packet means: alerts by every trigger, cancels, positions, telemetry, node info."""

from __future__ import annotations

import pytest
from meshtastic.protobuf import mesh_pb2

from station.decode.packets import (Alert, Cancel, NodeInfo, Position, Problem, Routing, Rules, SensorState,
                                    Telemetry, classify)
from station.radio.virtual.bracelets import cast, gga, rmc

RULES = Rules(keywords=("SOS", "HELP", "AIDE"), cancel_keywords=("SAFE", "CANCEL"))
B = cast()["amina"]


def kinds(packet):
    return [type(o).__name__ for o in classify(packet, RULES).observations]


@pytest.mark.parametrize("packet, source", [
    (B.alert("SOS"), "alert_app"),
    (B.alert(""), "alert_app"),
    (B.detection("Button 1 detected"), "detection_sensor"),
    (B.text("\x07"), "bell"),
    (B.text("need help now"), "keyword"),
    (B.text("sos"), "keyword"),
    (B.text("AIDE!"), "keyword"),
    (B.serial("SOS " + rmc(1.5, 2.5, 1.7e9)), "serial"),
])
def test_every_alert_trigger_is_recognised(packet, source):
    [alert] = classify(packet, RULES).of(Alert)
    assert alert.source == source


# DetectionSensorModule.cpp:119-157: what the sensor sends, byte for byte.
@pytest.mark.parametrize("payload, alert, state", [
    (b"SOS detected\x07", True, None),              # a press, with send_bell
    (b"SOS detected", True, None),                  # a press, without
    (b"Detection Sensor detected", True, None),     # the module's default name
    (b"SOS state: 0", False, 0),                    # the release (EITHER_EDGE), or the hourly report
    (b"SOS state: 1", False, 1),                    # the hourly report while held
    (b"Motion state: 1", False, 1),
    (b"panic!", True, None),                        # a format we do not know must not silence an alarm
])
def test_only_a_detection_sensor_press_is_an_alert_never_its_state(payload, alert, state):
    result = classify(B.packet(10, payload), RULES)
    assert bool(result.of(Alert)) is alert
    assert [s.state for s in result.of(SensorState)] == ([] if state is None else [state])


@pytest.mark.parametrize("level, shown, external, problem", [
    (0, 0, False, False), (57, 57, False, False), (100, 100, False, False),
    (101, None, True, False),                       # DeviceTelemetry.cpp: 101 means external power
    (250, None, True, True),                        # nonsense: counted, and never a percentage
])
def test_battery_101_means_external_power_not_a_percentage(level, shown, external, problem):
    result = classify(B.telemetry(level, 4.1), RULES)
    [t] = result.of(Telemetry)
    assert (t.battery_level, t.external_power) == (shown, external)
    assert bool(result.of(Problem)) is problem


@pytest.mark.parametrize("text", ["I'm safe, no SOSs here", "helpful", "SOSA", "a sosie"])
def test_keywords_match_whole_words_only(text):
    assert classify(B.text(text), RULES).of(Alert) == []


@pytest.mark.parametrize("text, pin", [("SAFE 2468", "2468"), ("cancel: 13579", "13579"), ("Safe-1234", "1234")])
def test_cancel_messages_carry_their_pin(text, pin):
    result = classify(B.text(text), RULES)
    assert result.of(Cancel) == [Cancel(pin, result.of(Cancel)[0].keyword)]
    assert result.of(Alert) == []


def test_a_cancel_without_a_pin_is_just_text():
    assert kinds(B.text("safe now")) == ["Text"]


def test_position_packet_gives_degrees():
    [pos] = classify(B.position(14.6937, -17.4441), RULES).of(Position)
    assert (round(pos.lat, 5), round(pos.lon, 5), pos.source, pos.sats) == (14.6937, -17.4441, "position_app", 7)


def test_position_without_fix_is_a_problem_not_a_position():
    assert classify(B.position(fix=False), RULES).of(Problem) == [Problem("position without fix")]


def test_nmea_in_a_text_alert_gives_the_alert_and_its_position():
    result = classify(B.text("SOS " + gga(14.7, -17.45, 1.7e9)), RULES)
    assert [type(o).__name__ for o in result.observations] == ["Position", "Alert"]


def test_telemetry_nodeinfo_and_routing():
    [t] = classify(B.telemetry(42, 3.71), RULES).of(Telemetry)
    assert (t.battery_level, t.voltage) == (42, 3.71)
    [n] = classify(B.nodeinfo(), RULES).of(NodeInfo)
    assert (n.long_name, n.short_name, n.hw_model) == ("Amina D.", "AMI", "RAK4631")
    assert n.public_key and len(n.public_key) == 44
    [r] = classify(B.routing_ack(1234, 99), RULES).of(Routing)
    assert r == Routing(1234, "NONE")


@pytest.mark.parametrize("payload, reason", [
    (b"\xff\xfe SOS", "non-utf8 text"),
    (b"x" * 600, "text too long"),
])
def test_strange_text_is_kept_and_reported(payload, reason):
    result = classify(B.text(payload), RULES)
    assert Problem(reason) in result.of(Problem)


def test_hostile_strings_are_data_not_markup():
    evil = '<script>alert(1)</script>\x1b[2J\u202eSOS'
    result = classify(B.text(evil), RULES)
    assert result.of(Alert)[0].text == evil          # stored verbatim; escaped where shown


def test_encrypted_and_unknown_ports_are_stored_without_meaning():
    p = mesh_pb2.MeshPacket(id=5, encrypted=b"\x01\x02")
    assert classify(p, RULES).observations == [Problem("encrypted")]
    unknown = classify(B.packet(250, b"\x00"), RULES)
    assert (unknown.port, unknown.observations) == ("PORT_250", [])


def test_corrupt_payloads_become_problems():
    bad = B.position()
    bad.decoded.payload = b"\x0d\x01"
    [problem] = classify(bad, RULES).of(Problem)
    assert problem.reason == "corrupt payload"
