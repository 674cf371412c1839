"""ADMIN_APP as the firmware answers it (src/modules/AdminModule.cpp, v2.7.26), for the virtual
radio: getters answer with the value and the session passkey, setters change the stored config
and reboot the radio when the firmware would, and a request that asked for a response but got
none is answered with a routing ACK (AdminModule.cpp:558-560).

Only the client on the radio's own port talks to it here (from == 0): the firmware does not ask
a local client for the passkey (AdminModule.cpp:131-137), and ignores it when is_managed is set.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from meshtastic.protobuf import admin_pb2, config_pb2, mesh_pb2, module_config_pb2

if TYPE_CHECKING:
    from station.radio.virtual.device import VirtualRadio

Admin = admin_pb2.AdminMessage
DEFAULT_REBOOT_SECONDS = 7           # configuration.h:372
SESSION_RENEW_S = 150                # AdminModule.cpp setPassKey: a new passkey past half its life
SESSION_EXPIRE_S = 300               # AdminModule.cpp:1457 checkPassKey
CONFIG_FIELDS = {                    # AdminMessage.ConfigType -> Config field
    Admin.DEVICE_CONFIG: "device", Admin.POSITION_CONFIG: "position", Admin.POWER_CONFIG: "power",
    Admin.NETWORK_CONFIG: "network", Admin.DISPLAY_CONFIG: "display", Admin.LORA_CONFIG: "lora",
    Admin.BLUETOOTH_CONFIG: "bluetooth", Admin.SECURITY_CONFIG: "security",
    Admin.SESSIONKEY_CONFIG: "sessionkey", Admin.DEVICEUI_CONFIG: "device_ui",
}
MODULE_FIELDS = {                    # AdminMessage.ModuleConfigType -> ModuleConfig field
    Admin.MQTT_CONFIG: "mqtt", Admin.SERIAL_CONFIG: "serial", Admin.EXTNOTIF_CONFIG: "external_notification",
    Admin.STOREFORWARD_CONFIG: "store_forward", Admin.RANGETEST_CONFIG: "range_test",
    Admin.TELEMETRY_CONFIG: "telemetry", Admin.CANNEDMSG_CONFIG: "canned_message", Admin.AUDIO_CONFIG: "audio",
    Admin.REMOTEHARDWARE_CONFIG: "remote_hardware", Admin.NEIGHBORINFO_CONFIG: "neighbor_info",
    Admin.AMBIENTLIGHTING_CONFIG: "ambient_lighting", Admin.DETECTIONSENSOR_CONFIG: "detection_sensor",
    Admin.PAXCOUNTER_CONFIG: "paxcounter",
}
# The lora fields whose change needs a reboot (AdminModule.cpp handleSetConfig, lora case).
LORA_RADIO_FIELDS = ("use_preset", "region", "modem_preset", "bandwidth", "spread_factor", "coding_rate",
                     "tx_power", "frequency_offset", "override_frequency", "channel_num", "sx126x_rx_boosted_gain")


class AdminModule:
    def __init__(self, radio: "VirtualRadio"):
        self.radio = radio
        self.passkey = b""
        self.session_time = 0.0
        self.open_edit = False
        self.changes: list[str] = []           # what was set, for tests and the debug console

    def _passkey(self) -> bytes:
        now = time.monotonic()
        if not self.passkey or now > self.session_time + SESSION_RENEW_S:
            self.passkey = os.urandom(8)
            self.session_time = now
        return self.passkey

    def handle_remote(self, request: mesh_pb2.MeshPacket, *, pki: bool, sender_key: bytes) -> list[mesh_pb2.MeshPacket]:
        """An ADMIN_APP packet from another node over the mesh (AdminModule.cpp:84-138): only
        PKI-encrypted from a key in security.admin_key, and a change only with the session
        passkey this module handed out with a get answer less than 300 s ago."""
        try:
            msg = Admin.FromString(request.decoded.payload)
        except Exception:
            return [self._routing(request, mesh_pb2.Routing.BAD_REQUEST)]
        kind = msg.WhichOneof("payload_variant") or ""
        if kind.endswith("_response"):
            return []                     # "Allow admin response message": nothing for us to do
        if not pki:
            self.radio.debug(f"Ignore unauthorized admin payload {kind}")
            return [self._routing(request, mesh_pb2.Routing.NOT_AUTHORIZED)]
        if sender_key not in [bytes(k) for k in self.radio.config.security.admin_key if len(k) == 32]:
            self.radio.debug("Received PKC admin payload, but the sender public key does not match the admin "
                             "authorized key!")
            return [self._routing(request, mesh_pb2.Routing.ADMIN_PUBLIC_KEY_UNAUTHORIZED)]
        if not (kind.startswith("get_") and kind.endswith("_request")):
            fresh = time.monotonic() < self.session_time + SESSION_EXPIRE_S
            if not (fresh and self.passkey and bytes(msg.session_passkey) == self.passkey):
                self.radio.debug("Admin message without session_key!")
                return [self._routing(request, mesh_pb2.Routing.ADMIN_BAD_SESSION_KEY)]
        return self.handle(request, remote=True)

    def handle(self, request: mesh_pb2.MeshPacket, *, remote: bool = False) -> list[mesh_pb2.MeshPacket]:
        """Answer an ADMIN_APP packet the client addressed to the radio itself (or, through
        handle_remote, an authorized node)."""
        try:
            msg = Admin.FromString(request.decoded.payload)
        except Exception:
            return [self._routing(request, mesh_pb2.Routing.BAD_REQUEST)]
        radio = self.radio
        if radio.config.security.is_managed and not remote:
            radio.debug("Ignore local admin payload because is_managed")
            return []
        kind = msg.WhichOneof("payload_variant")
        want = request.decoded.want_response
        reply: Admin | None = None
        error: int | None = None
        if kind == "get_owner_request":
            reply = Admin(get_owner_response=radio.owner) if want else None
        elif kind == "get_config_request":
            reply = self._get_config(msg.get_config_request) if want else None
        elif kind == "get_module_config_request":
            reply = self._get_module_config(msg.get_module_config_request) if want else None
        elif kind == "get_channel_request":
            index = msg.get_channel_request - 1
            if not 0 <= index < 8:
                error = mesh_pb2.Routing.BAD_REQUEST
            elif want:
                reply = Admin(get_channel_response=radio.channels[index])
        elif kind == "get_device_metadata_request":
            reply = Admin(get_device_metadata_response=radio.metadata())
        elif kind == "get_canned_message_module_messages_request":
            if want and not radio.model.lacks(mesh_pb2.ExcludedModules.CANNEDMSG_CONFIG):
                reply = Admin(get_canned_message_module_messages_response=radio.canned_messages)
        elif kind == "get_ringtone_request":
            if want and not radio.model.lacks(mesh_pb2.ExcludedModules.EXTNOTIF_CONFIG):
                reply = Admin(get_ringtone_response=radio.ringtone)
        elif kind == "get_device_connection_status_request":
            reply = Admin(get_device_connection_status_response=admin_pb2.DeviceConnectionStatus(
                serial=admin_pb2.SerialConnectionStatus(baud=115200, is_connected=True))) if want else None
        elif kind == "set_owner":
            error = self._set_owner(msg.set_owner)
        elif kind == "set_config":
            self._set_config(msg.set_config)
        elif kind == "set_module_config":
            self._set_module_config(msg.set_module_config)
        elif kind == "set_channel":
            if not 0 <= msg.set_channel.index < 8:
                error = mesh_pb2.Routing.BAD_REQUEST
            else:
                radio.channels[msg.set_channel.index].CopyFrom(msg.set_channel)
                self._note(f"channel {msg.set_channel.index}")
        elif kind == "set_canned_message_module_messages":
            radio.canned_messages = msg.set_canned_message_module_messages
            self._note("canned messages")
        elif kind == "set_ringtone_message":
            radio.ringtone = msg.set_ringtone_message
        elif kind == "set_favorite_node":
            entry = radio.nodedb.get(msg.set_favorite_node)
            if entry is not None:
                entry.is_favorite = True
        elif kind == "remove_favorite_node":
            entry = radio.nodedb.get(msg.remove_favorite_node)
            if entry is not None:
                entry.is_favorite = False
        elif kind == "set_ignored_node":
            entry = radio.nodedb.get(msg.set_ignored_node)
            if entry is not None:
                entry.is_ignored = True
                if entry.user is not None:
                    entry.user.public_key = b""
        elif kind == "remove_ignored_node":
            entry = radio.nodedb.get(msg.remove_ignored_node)
            if entry is not None:
                entry.is_ignored = False
        elif kind == "add_contact":
            radio.nodedb.add_contact(msg.add_contact)
        elif kind == "remove_by_nodenum":
            radio.nodedb.remove(msg.remove_by_nodenum)
        elif kind == "set_fixed_position":
            radio.own_position = mesh_pb2.Position()
            radio.own_position.CopyFrom(msg.set_fixed_position)
            radio.config.position.fixed_position = True
        elif kind == "remove_fixed_position":
            radio.own_position = None
            radio.config.position.fixed_position = False
        elif kind == "set_time_only":
            radio.clock_offset = msg.set_time_only - time.time()
        elif kind == "begin_edit_settings":
            self.open_edit = True
        elif kind == "commit_edit_settings":
            self.open_edit = False
            self._save(reboot=True)
        elif kind == "reboot_seconds":
            radio.reboot_in(msg.reboot_seconds)
        elif kind == "shutdown_seconds":
            radio.reboot_in(msg.shutdown_seconds, shutdown=True)
        elif kind == "factory_reset_config":
            radio.factory_reset(full=False)
            radio.reboot_in(DEFAULT_REBOOT_SECONDS)
        elif kind == "factory_reset_device":
            radio.factory_reset(full=True)
            radio.reboot_in(DEFAULT_REBOOT_SECONDS)
        elif kind == "nodedb_reset":
            radio.nodedb.reset(keep_favorites=msg.nodedb_reset)
            radio.reboot_in(DEFAULT_REBOOT_SECONDS)
        else:
            radio.debug(f"Module API did not handle admin message {kind}")
        if reply is not None:
            reply.session_passkey = self._passkey()
            return [radio.local_reply(request, reply.SerializeToString())]
        if error is not None:
            return [self._routing(request, error)]
        if want:
            return [self._routing(request, mesh_pb2.Routing.NONE)]
        return []

    # -- getters -------------------------------------------------------------------------------
    def _get_config(self, which: int) -> Admin:
        name = CONFIG_FIELDS.get(which)
        cfg = config_pb2.Config()
        if name == "sessionkey":
            cfg.sessionkey.SetInParent()
        elif name == "device_ui":
            cfg.device_ui.SetInParent()
        elif name:
            getattr(cfg, name).CopyFrom(getattr(self.radio.config, name))
        return Admin(get_config_response=cfg)

    def _get_module_config(self, which: int) -> Admin:
        name = MODULE_FIELDS.get(which)
        mc = module_config_pb2.ModuleConfig()
        if name:
            getattr(mc, name).CopyFrom(getattr(self.radio.module_config, name))
        return Admin(get_module_config_response=mc)

    # -- setters -------------------------------------------------------------------------------
    def _set_owner(self, o: mesh_pb2.User) -> int | None:
        for name in (o.long_name, o.short_name):
            if name and not name.strip():
                return mesh_pb2.Routing.BAD_REQUEST   # "must contain at least 1 non-whitespace character"
        owner = self.radio.owner
        if o.long_name:
            owner.long_name = o.long_name[:39]
        if o.short_name:
            owner.short_name = o.short_name[:4]
        owner.is_licensed = o.is_licensed
        self._note("owner")
        return None

    def _set_config(self, c: config_pb2.Config) -> None:
        radio = self.radio
        which = c.WhichOneof("payload_variant")
        if which in (None, "sessionkey"):
            return
        old = getattr(radio.config, which)
        new = getattr(c, which)
        reboot = True
        if which == "device":
            reboot = (old.button_gpio, old.buzzer_gpio, old.role, old.rebroadcast_mode) != \
                     (new.button_gpio, new.buzzer_gpio, new.role, new.rebroadcast_mode)
        elif which == "power":
            keep = ("device_battery_ina_address", "is_power_saving", "ls_secs", "min_wake_secs",
                    "on_battery_shutdown_after_secs", "sds_secs", "wait_bluetooth_secs")
            reboot = any(getattr(old, k) != getattr(new, k) for k in keep)
        elif which == "display":
            reboot = any(getattr(old, k) != getattr(new, k) for k in ("screen_on_secs", "flip_screen", "oled",
                                                                       "displaymode"))
        elif which == "lora":
            reboot = any(getattr(old, k) != getattr(new, k) for k in LORA_RADIO_FIELDS)
        elif which == "security":
            reboot = (old.debug_log_api_enabled, old.serial_enabled) != (new.debug_log_api_enabled, new.serial_enabled)
        old.CopyFrom(new)
        if which == "security":
            # AdminModule.cpp security case: the public key is derived from the private key sent;
            # a security config sent without one makes the radio draw a new key pair (and every
            # node that knew the old key can no longer send it PKI messages).
            radio.set_private_key(bytes(new.private_key) if len(new.private_key) == 32 else None)
        self._note(f"config.{which}")
        self._save(reboot)

    def _set_module_config(self, c: module_config_pb2.ModuleConfig) -> None:
        which = c.WhichOneof("payload_variant")
        if which is None:
            return
        getattr(self.radio.module_config, which).CopyFrom(getattr(c, which))
        self._note(f"module_config.{which}")
        self._save(reboot=which != "statusmessage")

    def _save(self, reboot: bool) -> None:
        """AdminModule.cpp saveChanges: a change that needs it reboots the radio after 7 s, unless
        an edit transaction is open (then the commit does)."""
        if reboot and not self.open_edit:
            self.radio.reboot_in(DEFAULT_REBOOT_SECONDS)

    def _note(self, what: str) -> None:
        self.changes.append(what)
        self.radio.debug(f"Set {what}")

    def _routing(self, request: mesh_pb2.MeshPacket, error: int) -> mesh_pb2.MeshPacket:
        return self.radio.local_reply(request, mesh_pb2.Routing(error_reason=error).SerializeToString(),
                                      routing=True)
