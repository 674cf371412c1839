"""The official `meshtastic` command-line tool, unmodified, against the virtual radio over TCP: a
technician's everyday commands must behave as against a real radio (ADMIN_APP answered as
AdminModule.cpp answers it), not "succeed" while changing nothing, nor hang."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from station.radio.sim import SimRadio

from .conftest import wait_until


@pytest.fixture
def radio():
    sim = SimRadio("idle", speed=0, tcp=0, reboot_scale=0.05).start()
    yield sim
    sim.stop()


def meshtastic(sim: SimRadio, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    host = sim.port.removeprefix("tcp://")
    p = subprocess.run([sys.executable, "-m", "meshtastic", "--host", host, *args], capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_info_shows_the_firmware_the_owner_and_the_nodes_it_knows(radio):
    out = meshtastic(radio, "--info").stdout
    assert "Owner: Station radio (virtual) (STN)" in out
    assert '"firmwareVersion": "2.7.26.54e0d8d"' in out
    assert '"longName": "Amina D."' in out and '"hwModel": "TRACKER_T1000_E"' in out


def test_set_then_get_shows_the_new_value_and_the_radio_really_holds_it(radio):
    assert "Set lora.hop_limit to 5" in meshtastic(radio, "--set", "lora.hop_limit", "5").stdout
    assert radio.radio.config.lora.hop_limit == 5
    assert "lora.hop_limit: 5" in meshtastic(radio, "--get", "lora.hop_limit").stdout
    # A change of region needs a reboot (AdminModule.cpp handleSetConfig): the radio reboots.
    meshtastic(radio, "--set", "lora.region", "US")
    wait_until(lambda: radio.radio.counters.boots == 2, 10, what="the reboot the region change needs")
    assert "lora.region: 1" in meshtastic(radio, "--get", "lora.region").stdout    # US, as the CLI prints it


def test_set_owner_and_canned_messages_are_stored(radio):
    meshtastic(radio, "--set-owner", "Office radio", "--set-owner-short", "OFC")
    assert (radio.radio.owner.long_name, radio.radio.owner.short_name) == ("Office radio", "OFC")
    meshtastic(radio, "--set-canned-message", "SOS|Call me")
    assert radio.radio.canned_messages == "SOS|Call me"
    assert "SOS|Call me" in meshtastic(radio, "--get-canned-message").stdout


def test_export_config_completes_with_channels_keys_and_settings(radio):
    out = meshtastic(radio, "--export-config", timeout=30).stdout
    exported = yaml.safe_load(out[out.index("# start of Meshtastic configure yaml"):])
    assert exported["owner"] == "Station radio (virtual)"
    assert exported["config"]["lora"]["region"] == "EU_868"
    assert exported["channel_url"].startswith("https://meshtastic.org/e/#")
    assert exported["config"]["security"]["publicKey"].startswith("base64:")


def test_reboot_reboots_and_the_radio_comes_back(radio):
    meshtastic(radio, "--reboot")
    wait_until(lambda: radio.radio.counters.boots == 2, 10, what="the reboot")
    wait_until(lambda: '"rebootCount": 2' in meshtastic(radio, "--info").stdout, 10, what="the radio back")


def test_device_metadata_reports_the_build_and_what_it_leaves_out(radio):
    out = meshtastic(radio, "--device-metadata").stdout
    assert "firmware_version: 2.7.26.54e0d8d" in out and "hw_model: HELTEC_V3" in out
    assert "excluded_modules: ['AMBIENTLIGHTING_CONFIG']" in out


def test_traceroute_position_and_telemetry_requests_are_answered_by_the_bracelet(radio):
    out = meshtastic(radio, "--traceroute", "!b5a1e002").stdout    # Bashir, two relays away
    assert "Route traced towards destination:" in out and out.count("0e1a000") == 4
    out = meshtastic(radio, "--request-position", "--dest", "!b5a1e001").stdout
    assert "Position received: (14.6937, -17.4441)" in out
    out = meshtastic(radio, "--request-telemetry", "--dest", "!b5a1e001").stdout
    assert "Battery level: 80.00%" in out and "Voltage: 4.00 V" in out
