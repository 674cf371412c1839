"""The device side of the Meshtastic stream protocol, modelled on the firmware's phone API.

An unmodified `SerialInterface` or `TCPInterface` connects to it through a transport (a
pseudo-terminal or a TCP socket; see transports.py). What it does follows the firmware of the
chosen profile (firmware.py), with the source cited where each rule is applied:
- the config handshake in the firmware's order, with the 69420/69421 nonces (PhoneAPI.cpp:289-572);
- heartbeats answered only where the firmware answers them;
- a client queue of 8 or 32 packets with the firmware's drop rules (MeshService.cpp:319-332); over
  serial, packets the firmware writes while no host has the port open are lost, as on a UART;
- the phone API's rate limits (a second text within 2 s is dropped though reported queued);
- ACK, NAK and implicit ACK answers, PKI and channel keys, duty cycle (router.py);
- ADMIN_APP (admin.py), `rebooted` after a reboot, the debug console between frames, 2.8's replay
  of cached positions and metrics after the handshake.

Faults, switchable at any time, for what firmware does not do on purpose: `hang()` (port open,
silent), `stall(s)`, `slow(bytes_per_s)`, `drop(p)` (lose a share of frames to the host),
`garbage(p)` (noise between frames), `replay_last` (repeat recent packets after a handshake), and
at the transport level unplug/replug.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from meshtastic.protobuf import (channel_pb2, config_pb2, localonly_pb2, mesh_pb2, module_config_pb2,
                                 portnums_pb2, telemetry_pb2)

from station.radio import framing
from station.radio.firmware import replay_packet_id
from station.radio.virtual import devices, firmware
from station.radio.virtual.admin import AdminModule
from station.radio.virtual.bracelets import BROADCAST, OFFICE_CHANNEL, Bracelet, node_id, public_channel
from station.radio.virtual.keys import KeyPair
from station.radio.virtual.nodedb import NodeDB
from station.radio.virtual.router import Router

log = logging.getLogger(__name__)
PORT = portnums_pb2.PortNum
REPLAY_MAX = 256
Region = config_pb2.Config.LoRaConfig.RegionCode
Preset = config_pb2.Config.LoRaConfig.ModemPreset


class Transport(Protocol):
    carries_console: bool

    def send(self, data: bytes) -> None: ...


@dataclass
class Faults:
    paused_until: float = 0.0          # hang = inf, stall = a moment in the future
    bytes_per_s: float = 0.0           # 0: full speed
    drop: float = 0.0
    garbage: float = 0.0
    # The next N handshakes end with another id than the host asked for. The firmware ends the
    # stream with whatever config_nonce holds then (PhoneAPI.cpp:626, v2.7.26), and every
    # want_config_id overwrites it (:186): a host that asked again mid-stream, or a stream begun
    # for an earlier host, ends on an id this host is not waiting for, and the library waits for
    # its own forever.
    wrong_complete_ids: int = 0


@dataclass
class HostPacket:
    """A packet the host (the station) asked the radio to send, and what became of it."""
    packet: mesh_pb2.MeshPacket
    at: float
    fate: str = "queued"               # queued, sent, local, duplicate, rate limited, refused: REASON

    @property
    def text(self) -> str:
        return self.packet.decoded.payload.decode("utf-8", "replace")

    @property
    def to(self) -> int:
        return self.packet.to


@dataclass
class Counters:
    handshakes: int = 0
    heartbeats: int = 0
    heartbeats_answered: int = 0
    frames_sent: int = 0
    packets_sent: int = 0              # mesh packets written to the host (what it must have read)
    dropped_queue_full: int = 0        # MeshService.cpp:319-332
    lost_port_closed: int = 0          # written while no host had the serial port open
    boots: int = 1


@dataclass(eq=False)
class VirtualRadio:
    node_num: int = 0x5A7A7100
    long_name: str = "Station radio (virtual)"
    short_name: str = "STN"
    firmware: str = firmware.DEFAULT
    device: str = "heltec-v3"
    seed: int = 7
    ack_delay_s: float = 0.05          # one hop, there and back
    retransmit_s: float = 0.5          # ReliableRouter's wait before sending a want_ack DM again
    reboot_scale: float = 1.0          # tests shrink the firmware's reboot delays
    replay_last: int = 0               # fault: resend this many delivered packets after each handshake
    pending_max: int | None = None     # the client queue; None: the device's own (8 or 32)
    region: int = Region.EU_868
    preset: int = Preset.LONG_FAST
    channel_settings: list[channel_pb2.ChannelSettings] | None = None
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        self.profile = firmware.profile(self.firmware)
        self.model = devices.device(self.device)
        self.rng = random.Random(self.seed)
        self.keys = KeyPair.from_seed(f"radio:{self.node_num}:{self.seed}")
        self.owner = mesh_pb2.User(id=node_id(self.node_num), long_name=self.long_name, short_name=self.short_name,
                                   hw_model=self.model.hw_model, public_key=self.keys.public)
        self.nodedb = NodeDB(self.node_num, self.model.nodedb)
        self.nodes: dict[int, Bracelet] = {}          # the virtual bracelets on the air
        self.unreachable: set[int] = set()
        self.host_packets: list[HostPacket] = []
        self.counters = Counters()
        self.client_ready = threading.Event()         # the host finished a handshake and is reading
        self.admin = AdminModule(self)
        self.router = Router(self)
        self.canned_messages = ""
        self.ringtone = ""
        self.own_position: mesh_pb2.Position | None = None
        self.clock_offset = 0.0
        self.channel_utilization = 3.5                # % of air time the radio hears busy (a calm mesh)
        self.queue_max = self.pending_max or self.model.client_queue
        self._decoder = framing.FrameDecoder()
        self._transport: Transport | None = None
        self._lock = threading.RLock()
        self._state = "nothing"                       # PhoneAPI: nothing, config, packets
        self._host_present = False
        self._console_muted = False                   # until the host's first frame (SerialConsole)
        self._pending: collections.deque[tuple[bytes, int | None, bool]] = collections.deque()
        self._replays: collections.deque[bytes] = collections.deque()
        self._delivered: collections.deque[bytes] = collections.deque(maxlen=REPLAY_MAX)
        self._listeners: list[Callable[[HostPacket], None]] = []
        self._defaults()

    # -- configuration as a new radio has it --------------------------------------------------
    def _defaults(self) -> None:
        C = config_pb2.Config
        cfg = localonly_pb2.LocalConfig()
        cfg.device.role = C.DeviceConfig.Role.CLIENT
        cfg.device.node_info_broadcast_secs = 10800
        cfg.position.position_broadcast_secs = 900
        cfg.position.gps_mode = C.PositionConfig.GpsMode.NOT_PRESENT
        cfg.lora.region = self.region
        cfg.lora.modem_preset = self.preset
        cfg.lora.use_preset = True
        cfg.lora.hop_limit = 3
        cfg.lora.tx_enabled = True
        cfg.lora.sx126x_rx_boosted_gain = True
        cfg.bluetooth.enabled = self.model.has_bluetooth
        cfg.bluetooth.mode = C.BluetoothConfig.PairingMode.RANDOM_PIN
        cfg.security.serial_enabled = True
        cfg.security.public_key = self.keys.public
        cfg.security.private_key = self.keys.private
        cfg.display.screen_on_secs = 600
        self.config = cfg
        mods = localonly_pb2.LocalModuleConfig()
        mods.telemetry.device_update_interval = 1800
        mods.detection_sensor.minimum_broadcast_secs = 45           # NodeDB.cpp:937
        mods.detection_sensor.detection_trigger_type = \
            module_config_pb2.ModuleConfig.DetectionSensorConfig.TriggerType.LOGIC_HIGH
        mods.neighbor_info.update_interval = 21600
        self.module_config = mods
        settings = self.channel_settings or [OFFICE_CHANNEL, public_channel()]
        self.channels = []
        for i in range(8):
            ch = channel_pb2.Channel(index=i, role=channel_pb2.Channel.Role.DISABLED)
            if i < len(settings):
                ch.role = channel_pb2.Channel.Role.PRIMARY if i == 0 else channel_pb2.Channel.Role.SECONDARY
                ch.settings.CopyFrom(settings[i])
            self.channels.append(ch)

    def boot_image(self, version: str) -> None:
        """A flashed image boots with the saved settings. Going to 2.8, NodeDB.cpp:2600-2616 runs
        its one-time opt-in migration: every telemetry broadcast flag off (optInDisableTelemetry-
        Broadcast, :1181-1192), whatever the node had chosen. (github:meshtastic/firmware at
        7754068, commit 8d2060620 "make position & telemetry broadcast opt-in", not yet tagged.)"""
        from station.radio.firmware import version_tuple
        before = self.profile.version
        self.profile = dataclasses.replace(firmware.nearest(version), version=version)
        if version_tuple(before) < (2, 8, 0) <= version_tuple(version):
            t = self.module_config.telemetry
            t.device_telemetry_enabled = t.environment_measurement_enabled = t.air_quality_enabled = False
            t.power_measurement_enabled = t.health_measurement_enabled = False
        self.counters.boots += 1

    def factory_reset(self, full: bool) -> None:
        """NodeDB factoryReset: config and channels back to a new radio's (the public channel
        only); a full reset also forgets the node database and draws a new key pair."""
        self.channel_settings = [public_channel()]
        if full:
            self.keys = KeyPair.from_seed(f"radio:{self.node_num}:{self.seed}:reset{self.counters.boots}")
            self.owner.public_key = self.keys.public
            self.nodedb.reset(keep_favorites=False)
        self._defaults()

    def set_private_key(self, private: bytes | None) -> None:
        if private is None:
            self.keys = KeyPair.from_seed(f"radio:{self.node_num}:{self.rng.random()}")
        else:
            from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
            pub = X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(Encoding.Raw,
                                                                                          PublicFormat.Raw)
            self.keys = KeyPair(private, pub)
        self.config.security.private_key = self.keys.private
        self.config.security.public_key = self.keys.public
        self.owner.public_key = self.keys.public

    def metadata(self) -> mesh_pb2.DeviceMetadata:
        """main.cpp getDeviceMetadata."""
        return mesh_pb2.DeviceMetadata(
            firmware_version=self.profile.version, device_state_version=24, canShutdown=False,
            hasWifi=self.model.has_wifi, hasBluetooth=self.model.has_bluetooth, role=self.config.device.role,
            position_flags=self.config.position.position_flags, hw_model=self.model.hw_model, hasPKC=True,
            excluded_modules=self.model.excluded)

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    # -- wiring ----------------------------------------------------------------------------
    def attach(self, transport: Transport | None) -> None:
        """A transport plugged in (or None: unplugged). The USB-powered radio loses power with
        its cable: what it held in RAM for the host is gone, and it hears nothing meanwhile."""
        with self._lock:
            self._transport = transport
            self._state = "nothing"
            self._host_present = False
            self._console_muted = False
            self.client_ready.clear()
            self._decoder = framing.FrameDecoder()
            if transport is None:
                self._pending.clear()
                self._replays.clear()
                self.router.power_off()

    @property
    def powered(self) -> bool:
        return self._transport is not None

    def host_present(self, present: bool) -> None:
        """The serial port was opened or closed by the host. The firmware cannot tell (it keeps
        writing, and a closed port loses what it writes: SerialConsole.cpp checkIsConnected only
        notices after 15 minutes)."""
        with self._lock:
            self._host_present = present
            if not present:
                self.client_ready.clear()
        if present:
            self._flush()

    def client_gone(self) -> None:
        """The TCP client went away: the firmware closes that phone API (PhoneAPI::close), so
        packets wait in the client queue again (ServerAPI.cpp:74-91)."""
        with self._lock:
            self._close_api()
            self._host_present = False

    def client_connected(self) -> None:
        with self._lock:
            self._close_api()
            self._host_present = True

    def _close_api(self) -> None:
        self._state = "nothing"
        self.client_ready.clear()
        self.router.client_closed()

    def on_host_packet(self, fn: Callable[[HostPacket], None]) -> None:
        self._listeners.append(fn)

    def add_node(self, bracelet: Bracelet, *, known: bool = True) -> None:
        """Put a bracelet on the air; `known`: the radio has heard its NodeInfo before (it is in
        the NodeDB with its key)."""
        self.nodes[bracelet.num] = bracelet
        if known:
            entry = self.nodedb.get_or_create(bracelet.num)
            entry.user = bracelet.user()
            entry.last_heard = self.now()
            entry.hops_away = bracelet.hops_away
            entry.channel = self.router.channel_index(bracelet.channel) or 0

    # -- faults ----------------------------------------------------------------------------
    def hang(self) -> None:
        self.faults.paused_until = math.inf

    def unhang(self) -> None:
        self.faults.paused_until = 0.0
        self._flush()

    def stall(self, seconds: float) -> None:
        self.faults.paused_until = time.monotonic() + seconds
        threading.Timer(seconds + 0.01, self._flush).start()

    def slow(self, bytes_per_s: float) -> None:
        self.faults.bytes_per_s = bytes_per_s

    def drop(self, probability: float) -> None:
        self.faults.drop = probability

    def garbage(self, probability: float) -> None:
        self.faults.garbage = probability

    @property
    def hung(self) -> bool:
        return time.monotonic() < self.faults.paused_until

    # -- host to radio -------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.hung:
            return  # a hung radio reads nothing and answers nothing
        for payload in self._decoder.feed(data):
            try:
                msg = mesh_pb2.ToRadio.FromString(payload)
            except Exception:
                self.debug("Error: ignore malformed toradio")
                continue
            self._console_muted = True
            self._handle(msg)

    def _handle(self, msg: mesh_pb2.ToRadio) -> None:
        kind = msg.WhichOneof("payload_variant")
        if kind == "want_config_id":
            self._handshake(msg.want_config_id)
        elif kind == "heartbeat":
            self.counters.heartbeats += 1
            if msg.heartbeat.nonce == 1 and self.profile.nodeinfo_ping:
                self.router.broadcast_nodeinfo()     # PhoneAPI.cpp:225-229: a NodeInfo ping
            elif self.profile.answers_heartbeat:
                self.counters.heartbeats_answered += 1
                self._send_now(mesh_pb2.FromRadio(queueStatus=self.router.queue_status()))
        elif kind == "packet":
            self._host_packet(msg.packet)
        elif kind == "disconnect":
            with self._lock:
                self._close_api()

    def _host_packet(self, packet: mesh_pb2.MeshPacket) -> None:
        hp = HostPacket(mesh_pb2.MeshPacket.FromString(packet.SerializeToString()), time.time())
        with self._lock:
            self.host_packets.append(hp)
        for fn in list(self._listeners):
            fn(hp)
        self.router.from_host(hp)

    # -- the handshake ---------------------------------------------------------------------------
    def _handshake(self, nonce: int) -> None:
        with self._lock:
            self._state = "config"
            self.client_ready.clear()
        frames = self._config_frames(nonce)
        with self._lock:
            if self.faults.wrong_complete_ids > 0:
                self.faults.wrong_complete_ids -= 1
                frames[-1] = mesh_pb2.FromRadio(config_complete_id=(nonce ^ 0x5A5A) or 1)
        for fr in frames:
            self._send_now(fr)
        with self._lock:
            self.counters.handshakes += 1
            self._state = "packets"
            if self.profile.replays_cache and nonce != firmware.NONCE_ONLY_CONFIG:
                self._replays.extend(self._framed(mesh_pb2.FromRadio(packet=p).SerializeToString())
                                     for p in self._cache_replay())
            if self.replay_last:
                for data in list(self._delivered)[-self.replay_last:]:
                    self._write(data)
            if self._host_present or not self._transport_is_serial():
                self.client_ready.set()
        self._flush()

    def _config_frames(self, nonce: int) -> list[mesh_pb2.FromRadio]:
        """PhoneAPI.cpp getFromRadio, STATE_SEND_MY_INFO to STATE_SEND_COMPLETE_ID."""
        F = mesh_pb2.FromRadio
        own = mesh_pb2.NodeInfo(num=self.node_num, user=self.owner, last_heard=self.now(), is_favorite=True)
        if self.own_position is not None:
            own.position.CopyFrom(self.own_position)
        # The radio's own NodeInfo carries its device metrics: DeviceTelemetry.cpp:95-112 builds
        # them (battery 101 when there is no battery or it charges, MAGIC_USB_BATTERY_LEVEL :18;
        # voltage from the battery, 0 without one; channel_utilization and air_util_tx from
        # airTime) and :194 stores them in its own NodeDB entry, which the handshake sends
        # (PhoneAPI.cpp STATE_SEND_OWN_NODEINFO).
        own.device_metrics.battery_level = 101
        own.device_metrics.voltage = 0.0
        own.device_metrics.channel_utilization = self.channel_utilization
        own.device_metrics.air_util_tx = self.router.hourly_tx_percent()
        frames = [F(my_info=mesh_pb2.MyNodeInfo(my_node_num=self.node_num, reboot_count=self.counters.boots,
                                                min_app_version=30200, nodedb_count=len(self.nodedb.entries),
                                                pio_env=self.model.key)),
                  F(deviceuiConfig=self._ui_config()),
                  F(node_info=own)]
        if nonce == firmware.NONCE_ONLY_NODES:
            frames += [F(node_info=e.as_nodeinfo(thin=self.profile.replays_cache)) for e in self.nodedb.others()]
            return frames + [F(config_complete_id=nonce)]
        frames.append(F(metadata=self.metadata()))
        frames += [F(channel=ch) for ch in self.channels]
        for name in ("device", "position", "power", "network", "display", "lora", "bluetooth", "security"):
            c = config_pb2.Config()
            getattr(c, name).CopyFrom(getattr(self.config, name))
            frames.append(F(config=c))
        frames.append(F(config=config_pb2.Config(sessionkey=config_pb2.Config.SessionkeyConfig())))
        frames.append(F(config=config_pb2.Config(device_ui=self._ui_config())))
        for name in ("mqtt", "serial", "external_notification", "store_forward", "range_test", "telemetry",
                     "canned_message", "audio", "remote_hardware", "neighbor_info", "ambient_lighting",
                     "detection_sensor", "paxcounter"):
            m = module_config_pb2.ModuleConfig()
            getattr(m, name).CopyFrom(getattr(self.module_config, name))
            frames.append(F(moduleConfig=m))
        if nonce != firmware.NONCE_ONLY_CONFIG:
            frames += [F(node_info=e.as_nodeinfo(thin=self.profile.replays_cache)) for e in self.nodedb.others()]
        frames.append(F(fileInfo=mesh_pb2.FileInfo(file_name="/prefs/config.proto", size_bytes=212)))
        frames.append(F(config_complete_id=nonce))
        return frames

    @staticmethod
    def _ui_config():
        from meshtastic.protobuf import device_ui_pb2
        return device_ui_pb2.DeviceUIConfig(version=1, screen_brightness=153, screen_timeout=30)

    def _cache_replay(self) -> list[mesh_pb2.MeshPacket]:
        """develop (2.8) PhoneAPI.cpp:1236-1290: positions, then device metrics, of every other
        node the radio remembers, shaped like live broadcasts. A position is kept as PositionLite,
        so its precision_bits are not replayed."""
        out = []
        hop_limit = self.config.lora.hop_limit or 3
        entries = self.nodedb.others()
        for e in entries:
            if e.position is None or not e.position.time:
                continue
            pos = mesh_pb2.Position(latitude_i=e.position.latitude_i, longitude_i=e.position.longitude_i,
                                    altitude=e.position.altitude, time=e.position.time)
            out.append(self._replay_packet(e, e.position.time, PORT.POSITION_APP, PORT.POSITION_APP,
                                           pos.SerializeToString(), hop_limit))
        for e in entries:
            if e.metrics is None:
                continue
            t = telemetry_pb2.Telemetry(time=e.last_heard)
            t.device_metrics.CopyFrom(e.metrics)
            kind = telemetry_pb2.Telemetry.DESCRIPTOR.fields_by_name["device_metrics"].number
            out.append(self._replay_packet(e, e.last_heard, kind, PORT.TELEMETRY_APP, t.SerializeToString(),
                                           hop_limit))
        return out

    @staticmethod
    def _replay_packet(e, when: int, kind: int, port: int, payload: bytes, hop_limit: int) -> mesh_pb2.MeshPacket:
        p = mesh_pb2.MeshPacket(to=BROADCAST, rx_time=when, id=replay_packet_id(e.num, when, kind), channel=0,
                                rx_snr=e.snr, hop_start=hop_limit,
                                hop_limit=max(0, hop_limit - (e.hops_away or 0)),
                                priority=mesh_pb2.MeshPacket.Priority.BACKGROUND,
                                transport_mechanism=mesh_pb2.MeshPacket.TransportMechanism.TRANSPORT_LORA)
        setattr(p, "from", e.num)
        p.decoded.portnum = port
        p.decoded.payload = payload
        return p

    # -- reboots ---------------------------------------------------------------------------------
    def reboot_in(self, seconds: float, *, shutdown: bool = False) -> None:
        self.debug(f"Reboot in {seconds} seconds")
        threading.Timer(max(0.0, seconds) * self.reboot_scale, self._reboot, kwargs={"shutdown": shutdown}).start()

    def _reboot(self, shutdown: bool = False) -> None:
        """The firmware restarts: RAM queues are gone, config and NodeDB are kept (flash). Over
        serial it says `rebooted` at boot (SerialConsole.cpp:76-78); a TCP client is cut off."""
        transport = self._transport
        with self._lock:
            self._close_api()
            self._pending.clear()
            self._replays.clear()
            self.router.power_off()
            self._console_muted = False
            self.counters.boots += 1
            self.admin.passkey = b""
        if transport is None or shutdown:
            return
        rebooting = getattr(transport, "rebooting", None)
        if rebooting is not None:
            rebooting()
        if self._transport_is_serial():
            self._write(framing.encode(mesh_pb2.FromRadio(rebooted=True).SerializeToString()))

    def _transport_is_serial(self) -> bool:
        return bool(getattr(self._transport, "carries_console", False))

    # -- radio to host -------------------------------------------------------------------------
    # Everything for the host is queued as ready-to-write bytes, in order, so that noise and
    # corrupt frames heard while no client was attached arrive where they were heard.
    def emit_packet(self, packet: mesh_pb2.MeshPacket) -> None:
        """Hand a packet to the host as the firmware hands over a packet it decoded, bypassing
        the air (for tests of the station's decoding and of faults). `hear()` is the air."""
        if self.faults.drop and self.rng.random() < self.faults.drop:
            return
        self._queue(self._framed(mesh_pb2.FromRadio(packet=packet).SerializeToString()), packet.decoded.portnum,
                    replayable=getattr(packet, "from") != self.node_num)

    def hear(self, packet: mesh_pb2.MeshPacket, sender: Bracelet | None = None,
             channel: channel_pb2.ChannelSettings | None = None) -> None:
        """A packet on the air reaches the radio: it is read (or not) as the firmware reads it."""
        self.router.hear(packet, sender, channel)

    def emit_payload(self, payload: bytes) -> None:
        """Any bytes as a frame payload: corrupt protobufs from the corpus, fuzzing."""
        self._queue(self._framed(payload), None)

    def emit_raw(self, data: bytes) -> None:
        """Bytes outside any frame: the firmware's debug console, line noise, oversized headers."""
        self._queue(data, None)

    def deliver(self, packet: mesh_pb2.MeshPacket) -> None:
        """MeshService::sendToPhone: into the client queue (the router calls this)."""
        self.emit_packet(packet)

    def debug(self, text: str) -> None:
        """The firmware's debug console: ANSI text on the serial port, or a LogRecord frame once
        the host enabled debug_log_api_enabled (SerialConsole.cpp log_to_serial)."""
        if not self._transport_is_serial() or self.hung:
            return
        if self._console_muted and self.config.security.debug_log_api_enabled:
            rec = mesh_pb2.LogRecord(message=text, source="vradio", level=mesh_pb2.LogRecord.Level.DEBUG)
            self._write(framing.encode(mesh_pb2.FromRadio(log_record=rec).SerializeToString()))
        else:
            stamp = time.strftime("%H:%M:%S", time.gmtime())
            self._write(f"\x1b[34mDEBUG \x1b[0m| {stamp} {int(time.monotonic())} [Router] {text}\r\n".encode())

    def _framed(self, payload: bytes) -> bytes:
        data = framing.encode(payload)
        if self.faults.garbage and self.rng.random() < self.faults.garbage:
            # Noise without the start byte, as a flaky UART produces, then a newline.
            noise = bytes(self.rng.randrange(0x20, 0x7f) for _ in range(self.rng.randint(1, 40)))
            data = noise + b"\n" + data
        return data

    def _queue(self, data: bytes, portnum: int | None, *, replayable: bool = False) -> None:
        if not self.powered:
            return   # switched off: nothing is heard
        with self._lock:
            if portnum is not None and sum(1 for _, p, _ in self._pending if p is not None) >= self.queue_max:
                self.counters.dropped_queue_full += 1
                if portnum in (PORT.TEXT_MESSAGE_APP, PORT.RANGE_TEST_APP):
                    # MeshService.cpp:319-332: a text pushes out the oldest packet...
                    for i, (_, p, _) in enumerate(self._pending):
                        if p is not None:
                            del self._pending[i]
                            break
                else:
                    return   # ...anything else is dropped
            self._pending.append((data, portnum, replayable))
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            while self._state == "packets" and not self.hung and self._transport is not None:
                if self._pending:
                    data, portnum, replayable = self._pending.popleft()
                    is_packet = portnum is not None
                elif self._replays:
                    data, portnum, replayable = self._replays.popleft(), None, False   # live packets go first
                    is_packet = True
                else:
                    return
                if not self._host_present and self._transport_is_serial():
                    self.counters.lost_port_closed += 1          # written to a port nobody reads
                    continue
                if not self._write(data):
                    self._pending.appendleft((data, portnum, replayable))
                    return
                if is_packet:
                    self.counters.packets_sent += 1
                if self.replay_last and replayable:
                    self._delivered.append(data)

    def _send_now(self, msg: mesh_pb2.FromRadio) -> None:
        if self._host_present or not self._transport_is_serial():
            self._write(framing.encode(msg.SerializeToString()))

    def send_status(self, msg: mesh_pb2.FromRadio) -> None:
        """queueStatus and notifications: served ahead of packets (PhoneAPI STATE_SEND_PACKETS);
        before a handshake completes they wait in their own two-slot queues, which we skip."""
        if self._state == "packets":
            self._send_now(msg)

    def _write(self, data: bytes) -> bool:
        transport = self._transport
        if transport is None or self.hung:
            return False
        try:
            if self.faults.bytes_per_s:
                for i in range(0, len(data), 16):
                    transport.send(data[i:i + 16])
                    time.sleep(16 / self.faults.bytes_per_s)
            else:
                transport.send(data)
        except OSError:
            self.client_ready.clear()
            return False
        self.counters.frames_sent += 1
        return True

    # -- for tests ---------------------------------------------------------------------------
    @property
    def handshakes(self) -> int:
        return self.counters.handshakes

    @property
    def heartbeats(self) -> int:
        return self.counters.heartbeats

    def pending(self) -> int:
        return len(self._pending) + len(self._replays)

    def texts_to(self, num: int) -> list[str]:
        """Texts the host asked the radio to send to `num` (sent or not)."""
        return [hp.text for hp in self.host_packets
                if hp.to == num and hp.packet.decoded.portnum == PORT.TEXT_MESSAGE_APP]

    def local_reply(self, request: mesh_pb2.MeshPacket, payload: bytes, *, routing: bool = False) -> mesh_pb2.MeshPacket:
        """A module's answer to the host's request to this radio: from us, to us (MeshModule
        setReplyTo with getFrom(0) == our node), delivered to the host."""
        p = self.router.new_packet(self.node_num)
        p.decoded.portnum = PORT.ROUTING_APP if routing else request.decoded.portnum
        p.decoded.payload = payload
        p.decoded.request_id = request.id
        p.channel = request.channel
        return p
