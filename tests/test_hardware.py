"""The hardware guide is a contract with the config: pins, wiring diagram and USB ids agree."""

from __future__ import annotations

import re
import xml.dom.minidom
from pathlib import Path

import pytest

from station.config import SCHEMA

HW = Path(__file__).resolve().parent.parent / "hardware"
PINS = {k: SCHEMA["gpio"][k].default for k in ("alert_led", "link_led", "internet_led", "buzzer", "ack_button")}
# BCM GPIO → physical header pin on every 40-pin Raspberry Pi.
HEADER = {17: 11, 27: 13, 22: 15, 18: 12, 23: 16}


def table_rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
            if line.startswith("|") and not line.startswith("|---")]


def test_pin_map_matches_the_config_defaults_and_the_header():
    rows = {r[1]: r for r in table_rows((HW / "pins.md").read_text()) if r[1] in PINS}
    assert set(rows) == set(PINS)
    for key, gpio in PINS.items():
        assert rows[key][2] == str(gpio) and rows[key][3] == str(HEADER[gpio])


def test_wiring_diagram_labels_every_pin_as_the_config_does():
    svg = (HW / "wiring.svg").read_text()
    xml.dom.minidom.parseString(svg)          # well-formed
    for key, gpio in PINS.items():
        assert f"GPIO{gpio} (pin {HEADER[gpio]})" in svg
        assert f"{key} = {gpio}" in svg


def usb_ids_in_rules() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"meshtastic": set(), "station-gps": set()}
    for line in (HW / "udev" / "99-station.rules").read_text().splitlines():
        m = re.search(r'idVendor}=="([0-9a-f]{4})".*idProduct}=="([0-9a-f]{4})".*SYMLINK\+="([\w-]+)"', line)
        if m:
            out[m.group(3)].add(f"{m.group(1)}:{m.group(2)}")
    return out


@pytest.mark.parametrize("section, symlink", [("LoRa radio", "meshtastic"), ("GPS for the station", "station-gps")])
def test_usb_ids_in_the_bill_of_materials_are_the_ones_in_the_udev_rules(section, symlink):
    bom = (HW / "bom.md").read_text()
    part = bom.split(f"## {section}")[1].split("\n## ")[0]
    ids = set(re.findall(r"\b[0-9a-f]{4}:[0-9a-f]{4}\b", part))
    assert ids and ids == usb_ids_in_rules()[symlink]


def test_udev_rules_are_well_formed():
    for line in (HW / "udev" / "99-station.rules").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            keys = [p.split("=")[0].rstrip("=!+") for p in re.split(r",\s*", line)]
            assert all(re.fullmatch(r"(SUBSYSTEM|KERNEL|ATTRS\{\w+\}|SYMLINK|GROUP|MODE)", k) for k in keys), line
            assert 'SYMLINK+="' in line and 'GROUP="dialout"' in line and 'MODE="0660"' in line


def test_bracelet_guide_uses_real_firmware_setting_names():
    from meshtastic.protobuf import config_pb2, module_config_pb2
    text = (HW / "bracelets.md").read_text()
    known = {
        "detection_sensor": {f.name for f in module_config_pb2.ModuleConfig.DetectionSensorConfig.DESCRIPTOR.fields},
        "canned_message": {f.name for f in module_config_pb2.ModuleConfig.CannedMessageConfig.DESCRIPTOR.fields},
        "position": {f.name for f in config_pb2.Config.PositionConfig.DESCRIPTOR.fields},
    }
    used = re.findall(r"--set (\w+)\.(\w+)", text)
    assert used
    for section, field in used:
        assert field in known[section], f"{section}.{field} is not a firmware setting"
