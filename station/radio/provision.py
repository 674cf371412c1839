"""Provisioning a bracelet plugged in by USB: what it is, whether it can raise an alert at all,
and the bracelet profile written to it over admin messages.

How a press becomes an alert depends on the model and on what its stock build includes
(DeviceMetadata.excluded_modules). The pins and polarities below are the firmware's own
(github:meshtastic/firmware v2.7.26):
- RAK4631: a push button between WB_IO4 and ground (variants/nrf52840/rak4631/variant.h:92,
  `#define WB_IO4 (4)`), read by the detection sensor with the internal pull-up, so a press reads
  low (DetectionSensorModule.cpp:76-77, pinMode INPUT_PULLUP when use_pullup).
- SenseCAP T1000-E: its button is P0.06, active high with a pull-down
  (variants/nrf52840/tracker-t1000-e/variant.h:54-57); only a build that includes the detection
  sensor can use it (the stock one does not: platformio.ini:20-22).
- LilyGO T-Echo: canned messages on its buttons (stock build includes the module); "SOS" with the
  bell is the alert. Never a cancel or a PIN in a canned message: a canned message goes out on the
  channel, where whoever holds the channel key reads it, and stays on the device for whoever
  takes it. The cancel is a direct message typed in the app paired with the bracelet, which its
  firmware seals with PKI (station/trust.py; hardware/bracelets.md).
A pin of 0 means "no pin" to the detection sensor (DetectionSensorModule.cpp:76), so a board whose
only button is GPIO 0 cannot use it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from meshtastic.protobuf import channel_pb2, config_pb2, mesh_pb2, module_config_pb2

from station.radio import firmware
from station.radio.admin import RadioAdmin
from station.radio.channels import key_id
from station.radio.info import RadioInfo
from station.radio.keeper import Bracelet, contact
from station.radio.profile import MeshProfile

Trigger = module_config_pb2.ModuleConfig.DetectionSensorConfig.TriggerType
LoRa = config_pb2.Config.LoRaConfig
POSITION_BROADCAST_S = 300      # a wearer's track every 5 minutes, more often when moving (smart)
# Device metrics (battery, voltage) every 15 minutes: the heartbeat the station's watch counts on
# (station/watch). Positions are no heartbeat: a bracelet that has not moved sends its position only
# every 12 h (Default.h:23, PositionModule.cpp:506-515). Since 2.7.13 device telemetry reaches the
# mesh only when device_telemetry_enabled is set (DeviceTelemetry.cpp:33, an opt-in), and 2.8 turns
# it off once on upgrade (NodeDB.cpp:2600-2616): a bracelet flashed with 2.8 must be checked again
# (station bracelets check --fix) or it falls silent. Default.cpp scales the interval for a client
# on a mesh of more than 40 nodes (congestionScalingCoefficient); set the wearer's own interval then.
TELEMETRY_S = 900
SENSOR_NAME = "SOS"             # the detection sensor says "SOS detected": a keyword as well
CANNED = "SOS"                  # with send_bell, the firmware appends the bell


@dataclass(frozen=True)
class AlertMethod:
    kind: str                   # "detection_sensor" or "canned_message"
    module: str                 # the ExcludedModules name the build must not exclude
    monitor_pin: int = 0
    use_pullup: bool = False
    trigger: int = Trigger.LOGIC_HIGH
    wiring: str = ""


METHODS: dict[str, AlertMethod] = {
    "RAK4631": AlertMethod("detection_sensor", "DETECTIONSENSOR_CONFIG", 4, True, Trigger.LOGIC_LOW,
                           "a push button between WB_IO4 and GND"),
    "TRACKER_T1000_E": AlertMethod("detection_sensor", "DETECTIONSENSOR_CONFIG", 6, False, Trigger.LOGIC_HIGH,
                                   "its own button (P0.06), with a build that includes the detection sensor"),
    "T_ECHO": AlertMethod("canned_message", "CANNEDMSG_CONFIG", wiring="its buttons send the canned SOS"),
}
SUITABLE = ("RAK4631 (WisBlock) with a push button on WB_IO4", "LilyGO T-Echo (canned messages)",
            "SenseCAP T1000-E only with a firmware build that includes the detection sensor")


class Refused(Exception):
    """This bracelet must not be provisioned; the message says why and what would do."""


def method_for(info: RadioInfo) -> AlertMethod:
    m = METHODS.get(info.hw_model)
    if m is None:
        raise Refused(f"a {info.hw_model} has no tested way to turn a press into an alert; suitable: "
                      + "; ".join(SUITABLE))
    if m.module in info.excluded_modules:
        raise Refused(f"this {info.hw_model}'s firmware build leaves out the {m.module.lower()} module, so no press "
                      "of its button can reach the station (the stock SenseCAP T1000-E build is like this); "
                      "suitable: " + "; ".join(SUITABLE))
    return m


def check(info: RadioInfo, profile: MeshProfile) -> AlertMethod:
    """Every reason to refuse, before anything is written."""
    if not info.pki or not info.public_key:
        raise Refused("the bracelet has no public key (firmware older than 2.5, or no region set yet): "
                      "the station could not pin it")
    if firmware.version_tuple(info.firmware) < firmware.version_tuple(profile.min_firmware):
        raise Refused(f"firmware {info.firmware} is older than the office's minimum {profile.min_firmware}: "
                      "flash it first (station radio flash FILE --port ...)")
    if not profile.region:
        raise Refused("[mesh] region is not set: a bracelet must be set to the region the office is licensed for")
    if not profile.channel_name:
        raise Refused("[mesh] channel_name is not set: a bracelet on the default public channel cannot send a "
                      "detection-sensor alert, and anyone can read it")
    return method_for(info)


def _radio_sections(admin: RadioAdmin, profile: MeshProfile):
    lora = admin.config("lora")
    lora.region = LoRa.RegionCode.Value(profile.region)
    lora.use_preset = True
    lora.modem_preset = LoRa.ModemPreset.Value(profile.modem_preset)
    lora.hop_limit = profile.hop_limit
    lora.tx_enabled = True
    position = admin.config("position")
    position.position_broadcast_secs = POSITION_BROADCAST_S
    position.position_broadcast_smart_enabled = True
    position.gps_mode = config_pb2.Config.PositionConfig.GpsMode.ENABLED
    return lora, position


def _telemetry(admin: RadioAdmin):
    telemetry = admin.module_config("telemetry")
    telemetry.device_update_interval = TELEMETRY_S
    telemetry.device_telemetry_enabled = True
    return telemetry


def _write_channels_and_method(admin: RadioAdmin, profile: MeshProfile, method: AlertMethod) -> None:
    primary = channel_pb2.Channel(index=0, role=channel_pb2.Channel.Role.PRIMARY)
    primary.settings.name = profile.channel_name
    primary.settings.psk = profile.psk(create=True)
    primary.settings.module_settings.position_precision = profile.position_precision
    admin.set_channel(primary)
    for i in range(1, 8):      # no secondary channel: a wearer's bracelet speaks only the office's
        admin.set_channel(channel_pb2.Channel(index=i, role=channel_pb2.Channel.Role.DISABLED))
    if method.kind == "detection_sensor":
        admin.set_module_config("detection_sensor", module_config_pb2.ModuleConfig.DetectionSensorConfig(
            enabled=True, monitor_pin=method.monitor_pin, use_pullup=method.use_pullup,
            detection_trigger_type=method.trigger, name=SENSOR_NAME, send_bell=True,
            minimum_broadcast_secs=45, state_broadcast_secs=0))
    else:
        admin.set_module_config("canned_message", module_config_pb2.ModuleConfig.CannedMessageConfig(
            enabled=True, send_bell=True, allow_input_source="_any"))
        admin.set_canned_messages(CANNED)


def apply(admin: RadioAdmin, profile: MeshProfile, method: AlertMethod, station: RadioInfo, label: str) -> None:
    """The bracelet profile, in one transaction (the commit reboots it)."""
    lora, position = _radio_sections(admin, profile)
    telemetry = _telemetry(admin)
    security = admin.config("security")
    # The security section is written whole: without its private key the firmware would draw a
    # new key pair (AdminModule.cpp:868-886) and the key pinned below would be wrong at once.
    station_key = base64.b64decode(station.public_key)
    if station_key not in list(security.admin_key):
        keys = [k for k in security.admin_key if k][:2]
        del security.admin_key[:]
        security.admin_key.extend([station_key, *keys])
    admin.begin()
    admin.set_config("lora", lora)
    admin.set_config("position", position)
    admin.set_config("security", security)
    admin.set_module_config("telemetry", telemetry)
    _write_channels_and_method(admin, profile, method)
    admin.set_owner(mesh_pb2.User(long_name=label[:39], short_name=label[:4]))
    admin.add_contact(contact(Bracelet(int(station.node.lstrip("!"), 16), "Base station", station.public_key,
                                       short_name="BASE")))
    admin.commit()


def reapply(admin: RadioAdmin, profile: MeshProfile, method: AlertMethod) -> None:
    """The profile again, over the mesh (admin is a remote RadioAdmin): radio, channels and alert
    method. Not the security section: a bracelet that answers already takes the station's key,
    and its private key never needs to travel."""
    lora, position = _radio_sections(admin, profile)
    telemetry = _telemetry(admin)
    admin.begin()
    admin.set_config("lora", lora)
    admin.set_config("position", position)
    admin.set_module_config("telemetry", telemetry)
    _write_channels_and_method(admin, profile, method)
    admin.commit()


def drift(admin: RadioAdmin, profile: MeshProfile, method: AlertMethod) -> list[tuple[str, str, str]]:
    """(what, has, wants) for each way the bracelet differs from the profile."""
    out = []
    lora = admin.config("lora")
    have = (LoRa.RegionCode.Name(lora.region), LoRa.ModemPreset.Name(lora.modem_preset) if lora.use_preset else
            "custom", lora.hop_limit)
    want = (profile.region, profile.modem_preset, profile.hop_limit)
    for name, h, w in zip(("region", "modem preset", "hop limit"), have, want):
        if h != w:
            out.append((name, str(h), str(w)))
    if admin.config("position").position_broadcast_secs != POSITION_BROADCAST_S:
        out.append(("position broadcast", "other", f"{POSITION_BROADCAST_S} s"))
    telemetry = admin.module_config("telemetry")
    if not telemetry.device_telemetry_enabled or telemetry.device_update_interval != TELEMETRY_S:
        # Off, the bracelet says nothing while she stands still: the watch would call her silent.
        out.append(("device telemetry", f"{'on' if telemetry.device_telemetry_enabled else 'off'}, every "
                    f"{telemetry.device_update_interval or 3600} s", f"on, every {TELEMETRY_S} s"))
    primary = admin.channel(0).settings
    if primary.name != profile.channel_name or key_id(primary.psk) != key_id(profile.psk() or b""):
        out.append(("primary channel", f"{primary.name or 'default'} (key {key_id(primary.psk)})",
                    f"{profile.channel_name} (key {key_id(profile.psk() or b'')})"))
    if primary.module_settings.position_precision != profile.position_precision:
        out.append(("position precision", str(primary.module_settings.position_precision),
                    str(profile.position_precision)))
    extra = [i for i in range(1, 8) if admin.channel(i).role != channel_pb2.Channel.Role.DISABLED]
    if extra:
        out.append(("secondary channels", ", ".join(map(str, extra)), "none"))
    if method.kind == "detection_sensor":
        sensor = admin.module_config("detection_sensor")
        if (sensor.enabled, sensor.monitor_pin, sensor.use_pullup, sensor.detection_trigger_type) != \
                (True, method.monitor_pin, method.use_pullup, method.trigger):
            out.append(("detection sensor", f"{'on' if sensor.enabled else 'off'}, pin {sensor.monitor_pin}",
                        f"on, pin {method.monitor_pin}"))
    elif not admin.module_config("canned_message").enabled:
        out.append(("canned messages", "off", "on"))
    return out


def verify(admin: RadioAdmin, after: RadioInfo, profile: MeshProfile, method: AlertMethod,
           station: RadioInfo, key_before: str) -> list[str]:
    """What the bracelet says after its reboot, against what was written."""
    problems = []
    primary = after.primary
    if after.public_key != key_before:
        problems.append("its public key changed")
    if primary is None or primary.name != profile.channel_name or \
            primary.key_id != key_id(profile.psk() or b""):
        problems.append("its primary channel is not the office's")
    if after.region != profile.region or after.modem_preset != profile.modem_preset:
        problems.append(f"its radio is {after.region} {after.modem_preset}")
    if method.kind == "detection_sensor":
        sensor = admin.module_config("detection_sensor")
        if not sensor.enabled or sensor.monitor_pin != method.monitor_pin:
            problems.append("its detection sensor is not set")
    else:
        if not admin.module_config("canned_message").enabled:
            problems.append("its canned messages are not enabled")
    if base64.b64decode(station.public_key) not in list(admin.config("security").admin_key):
        problems.append("it does not take the station's key as its admin key")
    return problems
