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
    from meshtastic.protobuf import channel_pb2
    channel = {f.name for f in channel_pb2.ChannelSettings.DESCRIPTOR.fields}
    module = {f.name for f in channel_pb2.ModuleSettings.DESCRIPTOR.fields}
    for path in re.findall(r"--ch-set ([\w.]+)", text):
        head, _, tail = path.partition(".")
        assert head in channel and (not tail or tail in module), f"{path} is not a channel setting"
    trigger = re.search(r"detection_trigger_type (\w+)", text).group(1)
    assert trigger in module_config_pb2.ModuleConfig.DetectionSensorConfig.TriggerType.keys()


def test_bracelet_guide_never_sells_a_device_whose_stock_build_cannot_raise_an_alert():
    """The T1000-E's stock build has neither module (variants/nrf52840/tracker-t1000-e): the guide
    must say "no" for it, and "yes" only for devices whose build keeps one of the two."""
    from meshtastic.protobuf import mesh_pb2

    from station.radio.virtual.devices import DEVICES
    text = (HW / "bracelets.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| ([^|]+?) \| \**(yes|no)\b", text, re.M)}
    names = {d.name: d for d in DEVICES.values()}
    checked = 0
    for label, verdict in rows.items():
        model = next((d for n, d in names.items() if n.split()[-1] in label), None)
        if model is None:
            continue
        can = not (model.lacks(mesh_pb2.ExcludedModules.DETECTIONSENSOR_CONFIG)
                   and model.lacks(mesh_pb2.ExcludedModules.CANNEDMSG_CONFIG))
        assert (verdict == "yes") is can, label
        checked += 1
    assert checked >= 3 and rows[next(k for k in rows if "T1000-E" in k)] == "no"
