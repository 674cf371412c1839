"""The device side of the Meshtastic stream protocol, with switchable faults.

An unmodified `SerialInterface` or `TCPInterface` connects to it through a transport (a
pseudo-terminal or a TCP socket; see transports.py). It answers the config handshake the way
the firmware does, answers heartbeats with `queueStatus`, records every packet the host sends
(so tests can see receipts), acknowledges them on behalf of reachable bracelets, and delivers
mesh packets. Like a real radio it buffers packets while no client is attached and delivers
them after the next handshake.

Faults, switchable at any time: `hang()` (port open, silent), `stall(s)`, `slow(bytes_per_s)`,
`drop(p)` (lose a share of outgoing frames), `garbage(p)` (noise between frames), and at the
transport level unplug/replug.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from meshtastic.protobuf import (channel_pb2, config_pb2, mesh_pb2, module_config_pb2,
                                 portnums_pb2)

from station.radio import framing
from station.radio.virtual.bracelets import Bracelet, node_id

log = logging.getLogger(__name__)
REPLAY_MAX = 256


class Transport(Protocol):
    def send(self, data: bytes) -> None: ...


@dataclass
class Faults:
    paused_until: float = 0.0          # hang = inf, stall = a moment in the future
    bytes_per_s: float = 0.0           # 0: full speed
    drop: float = 0.0
    garbage: float = 0.0


@dataclass
class HostPacket:
    """A packet the host (the station) asked the radio to send into the mesh."""
    packet: mesh_pb2.MeshPacket
    at: float

    @property
    def text(self) -> str:
        return self.packet.decoded.payload.decode("utf-8", "replace")

    @property
    def to(self) -> int:
        return self.packet.to


@dataclass
class VirtualRadio:
    node_num: int = 0x5A7A7100
    long_name: str = "Station radio (virtual)"
    short_name: str = "STN"
    seed: int = 7
    ack_delay_s: float = 0.05
    replay_last: int = 0               # resend this many delivered packets after each handshake
    pending_max: int = 20000
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.nodes: dict[int, Bracelet] = {}
        self.unreachable: set[int] = set()
        self.host_packets: list[HostPacket] = []
        self.handshakes = 0
        self.heartbeats = 0
        self.frames_sent = 0
        self.client_ready = threading.Event()
        self._decoder = framing.FrameDecoder()
        self._transport: Transport | None = None
        self._lock = threading.RLock()
        self._pending: collections.deque[bytes] = collections.deque()
        # Sized apart from replay_last, which may be changed while the radio runs.
        self._delivered: collections.deque[bytes] = collections.deque(maxlen=REPLAY_MAX)
        self._listeners: list[Callable[[HostPacket], None]] = []

    # -- wiring ----------------------------------------------------------------------------
    def attach(self, transport: Transport | None) -> None:
        with self._lock:
            self._transport = transport
            self.client_ready.clear()
            self._decoder = framing.FrameDecoder()

    def client_gone(self) -> None:
        """The transport lost its client (socket closed, port unplugged)."""
        self.client_ready.clear()

    def on_host_packet(self, fn: Callable[[HostPacket], None]) -> None:
        self._listeners.append(fn)

    def add_node(self, bracelet: Bracelet) -> None:
        """Put a node in the radio's node database (sent to the host in the handshake)."""
        self.nodes[bracelet.num] = bracelet

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
                log.debug("virtual radio: undecodable ToRadio ignored")
                continue
            self._handle(msg)

    def _handle(self, msg: mesh_pb2.ToRadio) -> None:
        kind = msg.WhichOneof("payload_variant")
        if kind == "want_config_id":
            self._handshake(msg.want_config_id)
        elif kind == "heartbeat":
            self.heartbeats += 1
            self._send_now(mesh_pb2.FromRadio(queueStatus=mesh_pb2.QueueStatus(free=16, maxlen=16)))
        elif kind == "packet":
            self._host_packet(msg.packet)
        elif kind == "disconnect":
            self.client_ready.clear()

    def _host_packet(self, packet: mesh_pb2.MeshPacket) -> None:
        hp = HostPacket(mesh_pb2.MeshPacket.FromString(packet.SerializeToString()), time.time())
        self.host_packets.append(hp)
        self._send_now(mesh_pb2.FromRadio(
            queueStatus=mesh_pb2.QueueStatus(free=16, maxlen=16, mesh_packet_id=packet.id)))
        for fn in list(self._listeners):
            fn(hp)
        target = self.nodes.get(packet.to)
        if packet.want_ack and target is not None:
            error = 0 if packet.to not in self.unreachable else mesh_pb2.Routing.MAX_RETRANSMIT
            ack = target.routing_ack(packet.id, self.node_num, error)
            threading.Timer(self.ack_delay_s, self.emit_packet, args=(ack,)).start()

    def _handshake(self, nonce: int) -> None:
        self.client_ready.clear()
        for fr in self._config_frames(nonce):
            self._send_now(fr)
        self.handshakes += 1
        with self._lock:
            replay = list(self._delivered)[-self.replay_last:] if self.replay_last else []
        for data in replay:
            self._write(data)
        self.client_ready.set()
        self._flush()

    def _config_frames(self, nonce: int) -> list[mesh_pb2.FromRadio]:
        me = mesh_pb2.User(id=node_id(self.node_num), long_name=self.long_name,
                           short_name=self.short_name, hw_model=mesh_pb2.HardwareModel.HELTEC_V3)
        frames = [
            mesh_pb2.FromRadio(my_info=mesh_pb2.MyNodeInfo(my_node_num=self.node_num, reboot_count=1,
                                                           min_app_version=30200)),
            mesh_pb2.FromRadio(node_info=mesh_pb2.NodeInfo(num=self.node_num, user=me,
                                                           last_heard=int(time.time()))),
            mesh_pb2.FromRadio(metadata=mesh_pb2.DeviceMetadata(
                firmware_version="2.6.11.virtual", device_state_version=24, hasWifi=False,
                hasBluetooth=True, hw_model=mesh_pb2.HardwareModel.HELTEC_V3)),
        ]
        for i in range(8):
            ch = channel_pb2.Channel(index=i, role=channel_pb2.Channel.Role.PRIMARY if i == 0
                                     else channel_pb2.Channel.Role.DISABLED)
            if i == 0:
                ch.settings.psk = b"\x01"
            frames.append(mesh_pb2.FromRadio(channel=ch))
        cfgs = [
            config_pb2.Config(device=config_pb2.Config.DeviceConfig(role=config_pb2.Config.DeviceConfig.Role.CLIENT)),
            config_pb2.Config(position=config_pb2.Config.PositionConfig(position_broadcast_secs=900)),
            config_pb2.Config(power=config_pb2.Config.PowerConfig()),
            config_pb2.Config(network=config_pb2.Config.NetworkConfig()),
            config_pb2.Config(display=config_pb2.Config.DisplayConfig()),
            config_pb2.Config(lora=config_pb2.Config.LoRaConfig(
                region=config_pb2.Config.LoRaConfig.RegionCode.EU_868,
                modem_preset=config_pb2.Config.LoRaConfig.ModemPreset.LONG_FAST, hop_limit=3, tx_enabled=True)),
            config_pb2.Config(bluetooth=config_pb2.Config.BluetoothConfig(enabled=False)),
            config_pb2.Config(security=config_pb2.Config.SecurityConfig()),
        ]
        frames += [mesh_pb2.FromRadio(config=c) for c in cfgs]
        mods = [
            module_config_pb2.ModuleConfig(mqtt=module_config_pb2.ModuleConfig.MQTTConfig()),
            module_config_pb2.ModuleConfig(serial=module_config_pb2.ModuleConfig.SerialConfig()),
            module_config_pb2.ModuleConfig(telemetry=module_config_pb2.ModuleConfig.TelemetryConfig()),
            module_config_pb2.ModuleConfig(detection_sensor=module_config_pb2.ModuleConfig.DetectionSensorConfig(
                enabled=True)),
        ]
        frames += [mesh_pb2.FromRadio(moduleConfig=m) for m in mods]
        for b in self.nodes.values():
            frames.append(mesh_pb2.FromRadio(node_info=mesh_pb2.NodeInfo(
                num=b.num, user=b.user(), last_heard=int(time.time()), hops_away=b.hops_away)))
        frames.append(mesh_pb2.FromRadio(config_complete_id=nonce))
        return frames

    # -- radio to host -------------------------------------------------------------------------
    # Everything for the host is queued as ready-to-write bytes, in order, so that noise and
    # corrupt frames heard while no client was attached arrive where they were heard.
    def emit_packet(self, packet: mesh_pb2.MeshPacket) -> None:
        """A packet heard on the mesh; delivered now, or after the next handshake."""
        if self.faults.drop and self.rng.random() < self.faults.drop:
            return
        self._queue(self._framed(mesh_pb2.FromRadio(packet=packet).SerializeToString()))

    def emit_payload(self, payload: bytes) -> None:
        """Any bytes as a frame payload: corrupt protobufs from the corpus, fuzzing."""
        self._queue(self._framed(payload))

    def emit_raw(self, data: bytes) -> None:
        """Bytes outside any frame: the firmware's debug console, line noise, oversized headers."""
        self._queue(data)

    def _framed(self, payload: bytes) -> bytes:
        data = framing.encode(payload)
        if self.faults.garbage and self.rng.random() < self.faults.garbage:
            # Noise without the start byte, as a flaky UART produces, then a newline.
            noise = bytes(self.rng.randrange(0x20, 0x7f) for _ in range(self.rng.randint(1, 40)))
            data = noise + b"\n" + data
        return data

    def _queue(self, data: bytes) -> None:
        with self._lock:
            if len(self._pending) >= self.pending_max:
                self._pending.popleft()
            self._pending.append(data)
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            while self._pending and self.client_ready.is_set() and not self.hung and self._transport:
                data = self._pending.popleft()
                if not self._write(data):
                    self._pending.appendleft(data)
                    return
                if self.replay_last:
                    self._delivered.append(data)

    def _send_now(self, msg: mesh_pb2.FromRadio) -> None:
        self._write(framing.encode(msg.SerializeToString()))

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
        self.frames_sent += 1
        return True

    def pending(self) -> int:
        return len(self._pending)

    def texts_to(self, num: int) -> list[str]:
        return [hp.text for hp in self.host_packets
                if hp.to == num and hp.packet.decoded.portnum == portnums_pb2.PortNum.TEXT_MESSAGE_APP]
