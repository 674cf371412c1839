"""What the station's radio says about itself at each handshake, and what cannot work with it.

The handshake (PhoneAPI.cpp:289-572) carries the radio's firmware and hardware (metadata), its
channels, its LoRa, device and security config, its module config and its NodeDB (which nodes
it knows, with their keys). `HandshakeNotes` collects those frames as they pass; `RadioInfo`
keeps what an office needs and never the private key the security config also carries.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass, field

from meshtastic.protobuf import channel_pb2, config_pb2, mesh_pb2

from station.radio import firmware
from station.radio.channels import PRESET_NAMES, key_id, own_key

LoRa = config_pb2.Config.LoRaConfig


def fingerprint(public_key: bytes) -> str:
    """A short, stable way to compare keys by eye: the first 8 bytes of SHA-256, in hex pairs."""
    if not public_key:
        return ""
    return ":".join(f"{b:02x}" for b in hashlib.sha256(public_key).digest()[:8])


def _name(enum, value: int) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        return str(value)


@dataclass
class Channel:
    index: int
    name: str
    role: str
    public: bool           # the default key under the preset's name: anyone can read it
    precision_bits: int
    key_id: str = ""       # channels.key_id: compares keys, never shows one
    # A key of its own (channels.own_key), so only radios given it can read or write on this channel.
    secret: bool = False


@dataclass
class RadioInfo:
    node: str = ""
    firmware: str = ""
    hw_model: str = ""
    region: str = ""
    preset: str = ""
    modem_preset: str = ""      # the enum name ("LONG_FAST"), as [mesh] modem_preset gives it
    role: str = ""
    hop_limit: int = 0
    tx_enabled: bool = True
    channels: list[Channel] = field(default_factory=list)
    pki: bool = False
    key_fingerprint: str = ""
    public_key: str = ""        # base64: public, what bracelets pin and take as their admin key
    excluded_modules: list[str] = field(default_factory=list)
    nodedb_size: int = 0
    keys: dict[int, str] = field(default_factory=dict)   # node -> base64 public key in the radio's NodeDB
    favorites: list[int] = field(default_factory=list)
    detection_sensor_enabled: bool = False
    serial_enabled: bool = True
    answers_heartbeat: bool = False
    channel_utilization: float | None = None   # % of air time busy, from its own device metrics
    air_util_tx: float | None = None           # % of the last hour it transmitted
    at: float = 0.0

    @property
    def primary(self) -> Channel | None:
        return next((c for c in self.channels if c.role == "PRIMARY"), None)

    def office_channel(self, index: int) -> bool:
        """Whether a received packet's channel index is the office's private primary channel (what
        provisioning puts bracelets on; trust.py)."""
        p = self.primary
        return p is not None and p.index == index and p.secret and not p.public

    def as_status(self) -> dict:
        """For `station status --json` and the console: the NodeDB as counts, not keys."""
        d = asdict(self)
        d["keys"] = len(self.keys)
        d["favorites"] = len(self.favorites)
        d["primary"] = asdict(self.primary) if self.primary else None
        return d

    def to_state(self) -> dict:
        d = asdict(self)
        d["keys"] = {f"{n:08x}": k for n, k in self.keys.items()}
        return d

    @classmethod
    def from_state(cls, d: dict) -> "RadioInfo":
        d = dict(d)
        d["channels"] = [Channel(**c) for c in d.get("channels", [])]
        d["keys"] = {int(n, 16): k for n, k in (d.get("keys") or {}).items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


class HandshakeNotes:
    """Fed every FromRadio frame of a handshake; `info()` once config_complete_id has passed."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.my_info: mesh_pb2.MyNodeInfo | None = None
        self.metadata: mesh_pb2.DeviceMetadata | None = None
        self.channels: dict[int, channel_pb2.Channel] = {}
        self.config = config_pb2.Config()
        self.lora: LoRa | None = None
        self.device: config_pb2.Config.DeviceConfig | None = None
        self.security: config_pb2.Config.SecurityConfig | None = None
        self.detection_enabled = False
        self.nodes: dict[int, mesh_pb2.NodeInfo] = {}
        self.own: mesh_pb2.NodeInfo | None = None

    def feed(self, fr: mesh_pb2.FromRadio) -> bool:
        """True when this frame completes the handshake."""
        kind = fr.WhichOneof("payload_variant")
        if kind == "my_info":
            self.reset()
            self.my_info = fr.my_info
        elif kind == "metadata":
            self.metadata = fr.metadata
        elif kind == "channel":
            self.channels[fr.channel.index] = fr.channel
        elif kind == "config":
            which = fr.config.WhichOneof("payload_variant")
            if which == "lora":
                self.lora = fr.config.lora
            elif which == "device":
                self.device = fr.config.device
            elif which == "security":
                # Only what we need: the private key in this frame is never kept.
                sec = config_pb2.Config.SecurityConfig(public_key=fr.config.security.public_key,
                                                       serial_enabled=fr.config.security.serial_enabled,
                                                       is_managed=fr.config.security.is_managed)
                self.security = sec
        elif kind == "moduleConfig":
            if fr.moduleConfig.WhichOneof("payload_variant") == "detection_sensor":
                self.detection_enabled = fr.moduleConfig.detection_sensor.enabled
        elif kind == "node_info":
            if self.my_info is not None and fr.node_info.num == self.my_info.my_node_num:
                self.own = fr.node_info
            self.nodes[fr.node_info.num] = fr.node_info
        elif kind == "config_complete_id":
            return self.my_info is not None
        return False

    def info(self, at: float) -> RadioInfo:
        own = self.my_info.my_node_num if self.my_info else 0
        md = self.metadata or mesh_pb2.DeviceMetadata()
        lora = self.lora or LoRa()
        preset_name = PRESET_NAMES.get(lora.modem_preset, "Custom") if lora.use_preset else "Custom"
        chans = []
        for i in sorted(self.channels):
            ch = self.channels[i]
            if ch.role == channel_pb2.Channel.Role.DISABLED:
                continue
            name = ch.settings.name or preset_name
            public = ch.settings.psk == b"\x01" and name == preset_name
            chans.append(Channel(i, name, _name(channel_pb2.Channel.Role, ch.role), public,
                                 ch.settings.module_settings.position_precision, key_id(ch.settings.psk),
                                 own_key(ch.settings.psk)))
        own_public = bytes(self.security.public_key) if self.security else b""
        keys = {n: base64.b64encode(info.user.public_key).decode() for n, info in self.nodes.items()
                if n != own and len(info.user.public_key) == 32}
        return RadioInfo(
            node=f"!{own:08x}", firmware=md.firmware_version, hw_model=_name(mesh_pb2.HardwareModel, md.hw_model),
            region=_name(LoRa.RegionCode, lora.region), preset=preset_name,
            modem_preset=_name(LoRa.ModemPreset, lora.modem_preset) if lora.use_preset else "custom",
            role=_name(config_pb2.Config.DeviceConfig.Role, self.device.role if self.device else 0),
            hop_limit=lora.hop_limit, tx_enabled=lora.tx_enabled, channels=chans,
            pki=bool(md.hasPKC) and len(own_public) == 32, key_fingerprint=fingerprint(own_public),
            public_key=base64.b64encode(own_public).decode() if own_public else "",
            excluded_modules=firmware.excluded_modules(md.excluded_modules),
            nodedb_size=len(self.nodes), keys=keys,
            favorites=sorted(n for n, i in self.nodes.items() if i.is_favorite and n != own),
            detection_sensor_enabled=self.detection_enabled,
            serial_enabled=self.security.serial_enabled if self.security else True,
            answers_heartbeat=firmware.answers_heartbeat(md.firmware_version),
            channel_utilization=self._metric("channel_utilization"), air_util_tx=self._metric("air_util_tx"), at=at)

    def _metric(self, name: str) -> float | None:
        if self.own is None or not self.own.HasField("device_metrics") or \
                not self.own.device_metrics.HasField(name):
            return None
        return round(getattr(self.own.device_metrics, name), 2)


@dataclass(frozen=True)
class Finding:
    level: str          # "fail" (alerts or receipts cannot work) or "warn"
    code: str
    text: str
    remedy: str
    subject: str = ""   # the bracelet concerned, if any


def findings(info: RadioInfo, bracelets: list[tuple[int, str, str | None, str | None]]) -> list[Finding]:
    """What cannot work, given the radio and the registered bracelets (node, label, pinned
    base64 key, hardware model as last announced)."""
    out: list[Finding] = []
    if info.region in ("UNSET", "0"):
        out.append(Finding("fail", "region-unset", "the radio has no LoRa region set: it does not transmit",
                           "set the region (e.g. meshtastic --set lora.region EU_868)"))
    elif not info.tx_enabled:
        out.append(Finding("fail", "tx-disabled", "the radio's transmitter is disabled: no receipt can leave",
                           "meshtastic --set lora.tx_enabled true"))
    primary = info.primary
    if primary is not None and primary.public:
        out.append(Finding(
            "fail", "public-primary",
            f"the radio's primary channel is the default public one ({primary.name}): anyone can read it, "
            "and a bracelet on it cannot send a detection-sensor alert (the firmware refuses)",
            "give the radio and every bracelet a private primary channel (name and random key)"))
    if info.firmware and not info.answers_heartbeat:
        out.append(Finding(
            "warn", "old-firmware",
            f"firmware {info.firmware} does not answer heartbeats (from {firmware.MIN_LIVENESS_VERSION}): "
            "the station checks the link with admin requests instead",
            f"update the radio's firmware to {firmware.MIN_LIVENESS_VERSION} or newer"))
    if not info.pki:
        out.append(Finding("warn", "no-pki", "the radio has no public key: receipts are not end-to-end encrypted",
                           "update the firmware (2.5 or newer) and set the region so it draws a key pair"))
    needs_key = firmware.dm_needs_key(info.firmware)
    for num, label, key, hw in bracelets:
        who = f"{label} (!{num:08x})"
        if not key:
            out.append(Finding("warn", "bracelet-unpinned", f"{who} has no pinned key yet",
                               "register the bracelet with its key (station bracelets add ... --public-key)", who))
        elif info.keys.get(num) != key:
            had = "another key" if num in info.keys else "no key"
            out.append(Finding(
                "fail" if needs_key else "warn", "radio-lacks-key",
                f"the radio holds {had} for {who}: "
                + ("its receipts are refused (firmware 2.7.19+ sends no DM without the key)" if needs_key
                   else "its receipts go out without end-to-end encryption"),
                "the station gives the radio the key at the next connection; if this persists, "
                "check the radio accepts admin messages", who))
        elif num not in info.favorites:
            out.append(Finding("warn", "not-favorite", f"{who} is not a favourite in the radio: it can be evicted "
                               "from a full node database", "the station marks it at the next connection", who))
        if hw == "TRACKER_T1000_E":
            out.append(Finding(
                "fail", "t1000e-stock",
                f"{who} is a SenseCAP T1000-E: its stock firmware has neither the detection sensor nor "
                "canned messages, so no press of its button reaches the station",
                "use a bracelet with a button on the detection sensor (see hardware/bracelets.md) "
                "or flash a build with the detection sensor module", who))
    return out
