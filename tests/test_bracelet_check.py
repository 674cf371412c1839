"""A technician checks a provisioned bracelet from the station, over the mesh: it answers with its
position, battery and route, its firmware and configuration are read with the station's admin
key, and a bracelet whose settings drifted (someone changed them with a phone) is set back over
the mesh with --fix. A bracelet that does not take the station's key cannot be changed from it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from station.cli import cli
from station.radio.virtual.device import VirtualRadio
from station.radio.virtual.radio_node import RadioNode

from .conftest import wait_until
from .test_provision import office, provision  # noqa: F401  (the fixture)


def check(config: str, node: str, *extra: str):
    return CliRunner().invoke(cli, ["--config", config, "bracelets", "check", node, "--by", "tech-ana",
                                    "--timeout", "8", *extra])


def on_the_air(h, radio: VirtualRadio, hops: int = 2) -> RadioNode:
    """The bracelet leaves the bench and is heard by the station's radio, `hops` relays away."""
    node = RadioNode.of(radio, hops_away=hops)
    h.sim.radio.add_node(node)
    return node


def provisioned(office_fixture):
    """The walk-through: the station's radio set to the profile, then the bracelet provisioned."""
    h, bracelet, config = office_fixture
    configured = CliRunner().invoke(cli, ["--config", config, "radio", "configure", "--yes", "--by", "tech-ana"])
    assert configured.exit_code == 0, configured.output
    b = bracelet("rak4631")
    result = provision(config, b.port)
    assert result.exit_code == 0, result.output
    return h, config, b


@pytest.mark.slow
def test_a_provisioned_bracelet_answers_with_its_route_battery_and_matching_profile(office):  # noqa: F811
    h, config, b = provisioned(office)
    on_the_air(h, b.radio, hops=2)
    node = f"!{b.radio.node_num:08x}"

    result = check(config, node)

    assert result.exit_code == 0, result.output
    assert f"route: station -> !0e1a0000 -> !0e1a0001 -> {node} (2 relays" in result.output
    assert "telemetry: battery 80%" in result.output
    assert f"firmware {b.radio.profile.version} (RAK4631)" in result.output
    assert "differs" not in result.output
    [(action, detail)] = h.rows("SELECT action, detail FROM events WHERE action='bracelet checked'")
    assert "answered position, telemetry, route" in detail


@pytest.mark.slow
def test_a_drifted_bracelet_is_set_back_over_the_mesh_with_the_session_passkey(office):  # noqa: F811
    h, config, b = provisioned(office)
    on_the_air(h, b.radio)
    node = f"!{b.radio.node_num:08x}"
    sensor = b.radio.module_config.detection_sensor
    sensor.enabled, sensor.monitor_pin = False, 0              # changed with a phone app
    b.radio.channels[1].role = 2                               # and a public secondary channel added
    b.radio.channels[1].settings.name = "LongFast"
    b.radio.module_config.telemetry.device_telemetry_enabled = False   # as 2.8 does once on upgrade

    drifted = check(config, node)
    assert drifted.exit_code == 1
    assert "differs: detection sensor is off, pin 0, the profile wants on, pin 4" in drifted.output
    assert "differs: secondary channels is 1, the profile wants none" in drifted.output
    assert "differs: device telemetry is off, every 900 s, the profile wants on, every 900 s" in drifted.output
    assert f"remedy: station bracelets check {node} --fix" in drifted.output

    fixed = check(config, node, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert "re-configured over the mesh: now matches the profile" in fixed.output
    assert (b.radio.module_config.detection_sensor.enabled, b.radio.module_config.detection_sensor.monitor_pin) == \
        (True, 4)
    assert b.radio.channels[1].role == 0 and b.radio.module_config.telemetry.device_telemetry_enabled
    assert any("detection sensor" in d for (d,) in h.rows(
        "SELECT detail FROM events WHERE action='bracelet re-configured'"))


def test_a_bracelet_that_does_not_take_the_station_key_cannot_be_changed_from_it(office):  # noqa: F811
    h, _bracelet, config = office
    stranger = VirtualRadio(device="rak4631", node_num=0xB5A1E0F0, reboot_scale=0.05)   # never provisioned
    on_the_air(h, stranger)
    key = __import__("base64").b64encode(stranger.keys.public).decode()
    CliRunner().invoke(cli, ["--config", config, "bracelets", "add", "!b5a1e0f0", "--label", "Unprovisioned",
                             "--public-key", key])
    before = stranger.module_config.SerializeToString()

    result = check(config, "!b5a1e0f0", "--fix", "--json")

    assert result.exit_code == 1
    out = json.loads(result.output)
    assert "ADMIN_PUBLIC_KEY_UNAUTHORIZED" in out["profile"]["error"]
    assert "provision it again over USB" in out["profile"]["error"]
    assert stranger.module_config.SerializeToString() == before
    assert "error" not in out["route"]                   # it still answers what anyone may ask


@pytest.mark.slow
def test_a_station_radio_on_another_channel_is_named_as_the_likely_cause(office):  # noqa: F811
    h, bracelet, config = office          # the station's radio was never set to the profile
    b = bracelet("rak4631")
    assert provision(config, b.port).exit_code == 0
    on_the_air(h, b.radio)
    result = check(config, f"!{b.radio.node_num:08x}")
    assert result.exit_code == 1
    assert "telemetry: battery 80%" in result.output        # a PKI direct message still gets through
    assert "position: no answer" in result.output
    assert "not on the same channel as the station's radio: station radio check" in result.output


@pytest.mark.slow
def test_a_bracelet_out_of_reach_is_reported_as_not_answering(office):  # noqa: F811
    h, config, b = provisioned(office)
    on_the_air(h, b.radio)
    h.sim.radio.unreachable.add(b.radio.node_num)
    result = check(config, f"!{b.radio.node_num:08x}")
    assert result.exit_code == 1
    assert "position: no answer (MAX_RETRANSMIT)" in result.output
    assert "route: no answer (MAX_RETRANSMIT)" in result.output
    wait_until(lambda: h.count("SELECT COUNT(*) FROM events WHERE action='bracelet checked' "
                               "AND detail LIKE '%no answer%'") == 1, 5, what="the event")
