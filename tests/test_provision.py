"""A technician provisions a bracelet plugged in by USB with one command: the bracelet is set to
the office's channel with the alert method its model can use, takes the station's key as its
admin key, and is registered with its key read from the device (no trust on first hearing). A
bracelet that cannot raise an alert is refused before anything is written to it."""

from __future__ import annotations

import base64
import json

import pytest
from click.testing import CliRunner
from meshtastic.protobuf import module_config_pb2

from station.cli import cli
from station.radio.sim import SimRadio

from .conftest import wait_until
from .test_radio_tools import PROFILE, write_config

Trigger = module_config_pb2.ModuleConfig.DetectionSensorConfig.TriggerType


@pytest.fixture
def office(tmp_path, harness):
    """The station running with its radio, and a bracelet on the technician's USB cable."""
    h = harness("idle", "pty", mesh=PROFILE, register=False)
    wait_until(lambda: h.count("SELECT COUNT(*) FROM station_state WHERE key='radio_info'") == 1,
               what="the station radio's handshake")
    made = []

    def bracelet(device: str) -> SimRadio:
        sim = SimRadio("idle", speed=0, pty=str(tmp_path / f"bracelet-{device}"), device=device,
                       node_num=0xB5A1E0A0 + len(made), reboot_scale=0.05).start(play=False)
        made.append(sim)
        return sim
    yield h, bracelet, write_config(tmp_path, h.sim.port, h.cfg.database_path)
    for sim in made:
        sim.stop()


def provision(config: str, port: str, pins: str = "246813\n135792\n"):
    return CliRunner().invoke(cli, ["--config", config, "bracelets", "provision", "--port", port,
                                    "--label", "Fatou S.", "--pins-stdin", "--by", "tech-ana"], input=pins)


@pytest.mark.slow          # seconds of real timing; the quick loop leaves it to the full run
def test_a_rak4631_is_set_to_the_office_profile_and_registered_with_its_own_key(office):
    h, bracelet, config = office
    b = bracelet("rak4631")
    key = base64.b64encode(b.radio.keys.public).decode()
    result = provision(config, b.port)
    assert result.exit_code == 0, result.output
    assert "alert method: detection sensor (a push button between WB_IO4 and GND)" in result.output
    r = b.radio
    assert (r.channels[0].settings.name, r.channels[0].settings.module_settings.position_precision) == ("Kibera", 16)
    assert r.channels[0].settings.psk == base64.b64decode((h.cfg.database_path.parent / "mesh.psk").read_text())
    assert all(ch.role == 0 for ch in r.channels[1:])        # no public secondary channel
    sensor = r.module_config.detection_sensor
    assert (sensor.enabled, sensor.monitor_pin, sensor.use_pullup, sensor.detection_trigger_type) == \
        (True, 4, True, Trigger.LOGIC_LOW)
    assert r.config.security.admin_key[0] == h.sim.radio.keys.public
    # Its battery every 15 minutes, opted in (DeviceTelemetry.cpp:33): the watch's heartbeat.
    assert (r.module_config.telemetry.device_telemetry_enabled, r.module_config.telemetry.device_update_interval) \
        == (True, 900)
    assert r.keys.public == base64.b64decode(key)             # its key survived the security write
    assert r.owner.long_name == "Fatou S."
    (label, pinned, cancel_hash), = h.rows("SELECT label, public_key, cancel_pin_hash FROM bracelets")
    assert (label, pinned) == ("Fatou S.", key) and cancel_hash and "246813" not in cancel_hash
    assert h.count("SELECT COUNT(*) FROM events WHERE actor='tech-ana' AND action='bracelet provisioned'") == 1
    listed = json.loads(CliRunner().invoke(cli, ["--config", config, "bracelets", "list", "--json"]).output)
    assert [x["label"] for x in listed] == ["Fatou S."]


def test_a_stock_t1000e_is_refused_with_the_devices_that_would_do_and_left_untouched(office):
    h, bracelet, config = office
    b = bracelet("t1000e")
    result = provision(config, b.port)
    assert result.exit_code == 1
    assert "refused:" in result.output and "leaves out the detectionsensor_config module" in result.output
    assert "RAK4631 (WisBlock) with a push button on WB_IO4" in result.output
    assert b.radio.admin.changes == [] and h.count("SELECT COUNT(*) FROM bracelets") == 0


def test_a_heltec_with_no_tested_alert_method_is_refused(office):
    h, bracelet, config = office
    result = provision(config, bracelet("heltec-v3").port)
    assert result.exit_code == 1 and "no tested way to turn a press into an alert" in result.output


def test_pins_are_checked_and_never_taken_from_the_command_line(office):
    h, bracelet, config = office
    b = bracelet("rak4631")
    bad = provision(config, b.port, pins="12\n\n")
    assert bad.exit_code == 1 and "a PIN is 6 to 8 digits" in bad.output
    assert b.radio.admin.changes == []
    opts = CliRunner().invoke(cli, ["bracelets", "provision", "--help"]).output
    assert "--cancel-pin" not in opts and "--duress-pin" not in opts
