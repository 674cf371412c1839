"""Admin messages to the station's own radio, as the firmware answers them.

src/modules/AdminModule.cpp: a get answers with the value (and a session passkey the station
does not need from the radio's own port, AdminModule.cpp:131-137); a set is answered with a
routing ACK when a response was asked for (AdminModule.cpp:558-560); changes made between
begin_edit_settings and commit_edit_settings are saved together at the commit, which reboots the
radio when one of them needs it.
"""

from __future__ import annotations

from meshtastic.protobuf import admin_pb2, channel_pb2, config_pb2, mesh_pb2, module_config_pb2, portnums_pb2

from station.radio.link import LinkDown, RadioLink

Admin = admin_pb2.AdminMessage
CONFIG_TYPES = {"device": Admin.DEVICE_CONFIG, "position": Admin.POSITION_CONFIG, "lora": Admin.LORA_CONFIG,
                "security": Admin.SECURITY_CONFIG, "bluetooth": Admin.BLUETOOTH_CONFIG,
                "display": Admin.DISPLAY_CONFIG, "power": Admin.POWER_CONFIG, "network": Admin.NETWORK_CONFIG}
MODULE_TYPES = {"mqtt": Admin.MQTT_CONFIG, "serial": Admin.SERIAL_CONFIG,
                "external_notification": Admin.EXTNOTIF_CONFIG, "store_forward": Admin.STOREFORWARD_CONFIG,
                "range_test": Admin.RANGETEST_CONFIG, "telemetry": Admin.TELEMETRY_CONFIG,
                "canned_message": Admin.CANNEDMSG_CONFIG, "audio": Admin.AUDIO_CONFIG,
                "remote_hardware": Admin.REMOTEHARDWARE_CONFIG, "neighbor_info": Admin.NEIGHBORINFO_CONFIG,
                "ambient_lighting": Admin.AMBIENTLIGHTING_CONFIG, "detection_sensor": Admin.DETECTIONSENSOR_CONFIG,
                "paxcounter": Admin.PAXCOUNTER_CONFIG}


class AdminRefused(Exception):
    """The radio answered, with an error."""


class RadioAdmin:
    """Admin messages to the station's own radio, or with `node` to another node over the mesh:
    a bracelet that took the station radio's key as its admin key (AdminModule.cpp:97-120, PKI
    only) and that wants its session passkey, from any of its get answers, on every change
    (AdminModule.cpp:133-138, 1438-1458: valid for 300 s)."""

    def __init__(self, link: RadioLink, timeout: float = 10.0, node: int | None = None):
        self.link = link
        self.timeout = timeout
        self.node = node
        self.passkey = b""

    def _exchange(self, msg: Admin) -> mesh_pb2.MeshPacket:
        if self.node is None:
            return self.link.ask_admin(msg, self.timeout)
        if self.passkey and not msg.WhichOneof("payload_variant").startswith("get_"):
            msg.session_passkey = self.passkey
        p = self.link.ask_node(self.node, portnums_pb2.PortNum.ADMIN_APP, msg.SerializeToString(), self.timeout)
        if p.decoded.portnum == portnums_pb2.PortNum.ADMIN_APP:
            got = Admin.FromString(p.decoded.payload)
            if got.session_passkey:
                self.passkey = bytes(got.session_passkey)
        return p

    def _ask(self, msg: Admin) -> Admin:
        p = self._exchange(msg)
        if p.decoded.portnum == portnums_pb2.PortNum.ADMIN_APP:
            return Admin.FromString(p.decoded.payload)
        if p.decoded.portnum == portnums_pb2.PortNum.ROUTING_APP:
            r = mesh_pb2.Routing.FromString(p.decoded.payload)
            if r.error_reason:
                raise AdminRefused(mesh_pb2.Routing.Error.Name(r.error_reason))
            raise AdminRefused("the radio acknowledged a request for a value without giving it")
        raise LinkDown(f"unexpected answer on port {p.decoded.portnum}")

    def _set(self, msg: Admin) -> None:
        p = self._exchange(msg)
        if p.decoded.portnum == portnums_pb2.PortNum.ROUTING_APP:
            r = mesh_pb2.Routing.FromString(p.decoded.payload)
            if r.error_reason:
                raise AdminRefused(mesh_pb2.Routing.Error.Name(r.error_reason))

    def config(self, name: str):
        """One section of the radio's config (config_pb2.Config.<Name>Config)."""
        got = self._ask(Admin(get_config_request=CONFIG_TYPES[name])).get_config_response
        return getattr(got, name)

    def module_config(self, name: str):
        got = self._ask(Admin(get_module_config_request=MODULE_TYPES[name])).get_module_config_response
        return getattr(got, name)

    def canned_messages(self) -> str:
        return self._ask(Admin(get_canned_message_module_messages_request=True)) \
            .get_canned_message_module_messages_response

    def channel(self, index: int) -> channel_pb2.Channel:
        # get_channel_request is the index plus one (admin.proto).
        return self._ask(Admin(get_channel_request=index + 1)).get_channel_response

    def metadata(self) -> mesh_pb2.DeviceMetadata:
        return self._ask(Admin(get_device_metadata_request=True)).get_device_metadata_response

    def owner(self) -> mesh_pb2.User:
        return self._ask(Admin(get_owner_request=True)).get_owner_response

    def begin(self) -> None:
        self._set(Admin(begin_edit_settings=True))

    def commit(self) -> None:
        self._set(Admin(commit_edit_settings=True))

    def set_config(self, name: str, section) -> None:
        c = config_pb2.Config()
        getattr(c, name).CopyFrom(section)
        self._set(Admin(set_config=c))

    def set_module_config(self, name: str, section) -> None:
        m = module_config_pb2.ModuleConfig()
        getattr(m, name).CopyFrom(section)
        self._set(Admin(set_module_config=m))

    def set_owner(self, user: mesh_pb2.User) -> None:
        self._set(Admin(set_owner=user))

    def set_canned_messages(self, text: str) -> None:
        self._set(Admin(set_canned_message_module_messages=text))

    def add_contact(self, msg: Admin) -> None:
        """An AdminMessage carrying add_contact (keeper.contact builds it)."""
        self._set(msg)

    def set_channel(self, channel: channel_pb2.Channel) -> None:
        self._set(Admin(set_channel=channel))

    def reboot(self, seconds: int = 2) -> None:
        self._set(Admin(reboot_seconds=seconds))
