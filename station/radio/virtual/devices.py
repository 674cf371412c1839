"""Real devices and what their stock firmware builds can do, for the virtual radio and bracelets.

The excluded modules are DeviceMetadata.excluded_modules as main.cpp:1086-1126 computes them from
each variant's build flags (github:meshtastic/firmware v2.7.26, variants/*/platformio.ini and
variant.h). What a button does is the stock button mapping (src/input/InputBroker.cpp:330-360).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshtastic.protobuf import mesh_pb2

X = mesh_pb2.ExcludedModules
HW = mesh_pb2.HardwareModel


@dataclass(frozen=True)
class DeviceModel:
    key: str
    name: str
    hw_model: int
    excluded: int
    button: str              # what a press of the user button does in the stock build
    client_queue: int        # mesh-pb-constants.h:17-23: 8 on the original ESP32, else 32
    nodedb: int              # mesh-pb-constants.h:48-60
    has_bluetooth: bool = True
    has_wifi: bool = False

    def lacks(self, module_bit: int) -> bool:
        return bool(self.excluded & module_bit)


DEVICES: dict[str, DeviceModel] = {
    # variants/nrf52840/tracker-t1000-e/platformio.ini:20,22 (PR #6584): no canned messages, no
    # detection sensor. One press: buzzer feedback only; two: position (or node info) broadcast
    # (INPUT_BROKER_SEND_PING, SystemCommandsModule.cpp:106-113); three: GPS on/off.
    "t1000e": DeviceModel("t1000e", "SenseCAP T1000-E", HW.TRACKER_T1000_E,
                          X.CANNEDMSG_CONFIG | X.DETECTIONSENSOR_CONFIG | X.PAXCOUNTER_CONFIG
                          | X.AMBIENTLIGHTING_CONFIG | X.NETWORK_CONFIG,
                          button="feedback; double: position broadcast; triple: GPS on/off",
                          client_queue=32, nodedb=80),
    # RAK4631 WisBlock: both modules built in; a push button wired to a free IO pin and the
    # detection sensor's monitor_pin makes a press a "<name> detected" message.
    "rak4631": DeviceModel("rak4631", "RAK WisBlock 4631", HW.RAK4631,
                           X.PAXCOUNTER_CONFIG | X.NETWORK_CONFIG,
                           button="detection sensor on monitor_pin", client_queue=32, nodedb=80),
    # LilyGO T-Echo: screen and buttons, canned messages built in.
    "techo": DeviceModel("techo", "LilyGO T-Echo", HW.T_ECHO,
                         X.PAXCOUNTER_CONFIG | X.AMBIENTLIGHTING_CONFIG | X.NETWORK_CONFIG,
                         button="canned messages (screen menu)", client_queue=32, nodedb=80),
    # Heltec V3 (ESP32-S3 with a CP2102 USB bridge): the usual station radio.
    "heltec-v3": DeviceModel("heltec-v3", "Heltec LoRa 32 V3", HW.HELTEC_V3, X.AMBIENTLIGHTING_CONFIG,
                             button="screen pages", client_queue=32, nodedb=100, has_wifi=True),
    # The original ESP32 (LilyGO T-Beam): a client queue of only 8 packets.
    "tbeam": DeviceModel("tbeam", "LilyGO T-Beam (ESP32)", HW.TBEAM, X.AMBIENTLIGHTING_CONFIG,
                         button="screen pages", client_queue=8, nodedb=100, has_wifi=True),
}


def device(key: str) -> DeviceModel:
    try:
        return DEVICES[key]
    except KeyError:
        raise ValueError(f"unknown device {key!r}; known: {', '.join(DEVICES)}") from None
