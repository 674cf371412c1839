"""The station radio's router: what happens to a packet from the host, and to one from the air.

From the host (PhoneAPI.cpp handleToRadioPacket, MeshService.cpp handleToRadio/sendToMesh,
Router.cpp send/perhapsEncode, ReliableRouter.cpp):
- an id seen among the last 20 is ignored without an answer (PhoneAPI wasSeenRecently);
- per-port rate limits: traceroute 30 s; position, waypoint, alert, telemetry 10 s; text 2 s from
  v2.7.0, reported as queued (res=0) all the same;
- a packet to the radio itself is handled locally (ADMIN_APP) and answered from our own node;
- a DM goes PKI when the radio knows the destination's key; without one, v2.7.19+ refuses it
  (PKI_SEND_FAIL_PUBLIC_KEY) and older firmware sends it channel-encrypted;
- above the region's duty cycle it is refused (DUTY_CYCLE_LIMIT) with a ClientNotification;
- a want_ack DM is retransmitted until the destination ACKs; a relay's rebroadcast heard on the
  way is an implicit ACK; silence after the last try is MAX_RETRANSMIT. Every failure the radio
  raises itself comes from our own node, to our own node (Router.cpp:197 getFrom, abortSendAndNak).

From the air (Router.cpp perhapsDecode, RoutingModule.cpp:35-38, NodeDB.cpp updateUser):
packets for other nodes are not delivered; what cannot be decrypted is delivered as `encrypted`;
a PKI DM from a node whose key the radio lacks cannot be read; a NodeInfo announcing a different
key for a node whose key is known does not change the NodeDB.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING

from meshtastic.protobuf import channel_pb2, mesh_pb2, portnums_pb2, telemetry_pb2

from station.radio.virtual import firmware
from station.radio.virtual.bracelets import BROADCAST, Bracelet, public_channel
from station.radio.virtual.keys import is_default_channel, same_channel
from station.radio.virtual.mesh import NOT_PKI, Sealed, deliver_to_node, seal

if TYPE_CHECKING:
    from station.radio.virtual.device import HostPacket, VirtualRadio

PORT = portnums_pb2.PortNum
Err = mesh_pb2.Routing.Error
# RadioInterface.cpp regions: duty cycle in percent of each hour.
DUTY_CYCLE = {3: 10.0, 4: 10.0}           # EU_433, EU_868; others 100
# LongFast on air, about 1 s for a receipt-sized packet (SF11, 250 kHz, CR 4/5, preamble 16).
AIRTIME_S = 1.0


class Router:
    def __init__(self, radio: "VirtualRadio"):
        self.radio = radio
        self._lock = threading.RLock()
        self._recent_ids: collections.deque[int] = collections.deque(maxlen=20)
        self._last_port: dict[int, float] = {}
        self._timers: list[threading.Timer] = []
        self._waiting: dict[int, int] = {}       # want_ack packet id -> tries left
        self.tx_log: collections.deque[tuple[float, float]] = collections.deque()   # (when, airtime s)
        self.duty_cycle_used_s = 0.0             # extra airtime as if already spent (tests)
        self._next_id = radio.rng.randrange(1, 1 << 10)

    # -- housekeeping ----------------------------------------------------------------------------
    def new_packet(self, to: int) -> mesh_pb2.MeshPacket:
        """Router.cpp allocForSending: from us, a fresh id (22 random bits over a counter)."""
        self._next_id = (self._next_id + 1) & 0x3FF
        p = mesh_pb2.MeshPacket(to=to, id=(self.radio.rng.getrandbits(22) << 10 | self._next_id) or 1,
                                rx_time=self.radio.now(), hop_limit=self.radio.config.lora.hop_limit or 3)
        setattr(p, "from", self.radio.node_num)
        return p

    def client_closed(self) -> None:
        """PhoneAPI::close clears lastPortNumToRadio."""
        self._last_port.clear()

    def power_off(self) -> None:
        with self._lock:
            for t in self._timers:
                t.cancel()
            self._timers.clear()
            self._waiting.clear()
            self._recent_ids.clear()
            self._last_port.clear()

    def _later(self, delay: float, fn, *args) -> None:
        t = threading.Timer(delay, fn, args=args)
        t.daemon = True
        with self._lock:
            self._timers = [x for x in self._timers if x.is_alive()]
            self._timers.append(t)
        t.start()

    def channel_index(self, settings: channel_pb2.ChannelSettings) -> int | None:
        for ch in self.radio.channels:
            if ch.role != channel_pb2.Channel.Role.DISABLED and same_channel(ch.settings, settings, self.radio.preset):
                return ch.index
        return None

    def queue_status(self, res: int = 0, packet_id: int = 0) -> mesh_pb2.QueueStatus:
        with self._lock:
            busy = len(self._waiting)
        return mesh_pb2.QueueStatus(res=res, free=max(0, firmware.TX_QUEUE - busy), maxlen=firmware.TX_QUEUE,
                                    mesh_packet_id=packet_id)

    def _status(self, res: int, packet_id: int) -> None:
        self.radio.send_status(mesh_pb2.FromRadio(queueStatus=self.queue_status(res, packet_id)))

    def _notify(self, reply_id: int, message: str) -> None:
        n = mesh_pb2.ClientNotification(reply_id=reply_id, time=self.radio.now(), message=message,
                                        level=mesh_pb2.LogRecord.Level.WARNING)
        self.radio.send_status(mesh_pb2.FromRadio(clientNotification=n))

    def _nak_from_us(self, packet_id: int, error: int, channel: int = 0) -> None:
        """Router.cpp abortSendAndNak: a routing error from our own node to our own node."""
        p = self.new_packet(self.radio.node_num)
        p.channel = channel
        p.decoded.portnum = PORT.ROUTING_APP
        p.decoded.payload = mesh_pb2.Routing(error_reason=error).SerializeToString()
        p.decoded.request_id = packet_id
        self.radio.deliver(p)

    # -- from the host ---------------------------------------------------------------------------
    def from_host(self, hp: "HostPacket") -> None:
        radio, p = self.radio, hp.packet
        with self._lock:
            if p.id and p.id in self._recent_ids:
                hp.fate = "duplicate"       # ignored, and not even a queueStatus
                return
            if p.id:
                self._recent_ids.append(p.id)
        port = p.decoded.portnum
        now = time.monotonic()
        last = self._last_port.get(port)
        limit = None
        if port == PORT.TRACEROUTE_APP and last is not None and now - last < firmware.TRACEROUTE_LIMIT_S:
            limit = "TraceRoute can only be sent once every 30 seconds"
        elif port in (PORT.POSITION_APP, PORT.WAYPOINT_APP, PORT.ALERT_APP, PORT.TELEMETRY_APP) and \
                last is not None and now - last < firmware.PORT_LIMIT_S:
            limit = ""
        elif port == PORT.TEXT_MESSAGE_APP and radio.profile.text_limit_s and last is not None and \
                now - last < radio.profile.text_limit_s:
            limit = "Text messages can only be sent once every 2 seconds" \
                if radio.profile.text_limit_notice == "notification" else ""
        if limit is not None:
            hp.fate = "rate limited"
            radio.debug(f"Rate limit portnum {port}")
            if limit:
                self._notify(p.id, limit)
            self._status(0, p.id)
            # From v2.7.4 a RATE_LIMIT_EXCEEDED routing error goes to mp->from, 0 here: it never
            # comes back (PhoneAPI.cpp handleToRadioPacket, MeshService sendRoutingErrorResponse).
            return
        self._last_port[port] = now
        if port == PORT.TRACEROUTE_APP and p.to != BROADCAST:
            p.want_ack = True       # PhoneAPI upgrades a traceroute to reliable delivery
        if not p.id:
            p.id = self.new_packet(0).id
        if p.to == radio.node_num:
            hp.fate = "local"
            replies = radio.admin.handle(p) if port == PORT.ADMIN_APP else []
            self._status(0, p.id)
            for r in replies:
                radio.deliver(r)
            return
        error = self._send(p)
        hp.fate = "sent" if error is None else f"refused: {Err.Name(error)}"
        self._status(0 if error is None else error, p.id)

    def _send(self, p: mesh_pb2.MeshPacket) -> int | None:
        radio = self.radio
        setattr(p, "from", radio.node_num)
        region = radio.config.lora.region
        duty = DUTY_CYCLE.get(region, 100.0)
        if not radio.config.lora.override_duty_cycle and duty < 100 and self.hourly_tx_percent() > duty:
            minutes = 60 - int((time.monotonic() - self.tx_log[0][0]) / 60) if self.tx_log else 60
            self._notify(p.id, f"Duty cycle limit exceeded. You can send again in {minutes} mins")
            radio.debug("Duty cycle limit exceeded. Aborting send for now")
            self._nak_from_us(p.id, Err.DUTY_CYCLE_LIMIT)
            return Err.DUTY_CYCLE_LIMIT
        if p.to == BROADCAST:
            p.want_ack = False
            self._airtime()
            return None
        pki = False
        channel = radio.channels[p.channel if p.channel < 8 else 0].settings
        entry = radio.nodedb.get(p.to)
        if entry is not None and not p.channel:
            channel = radio.channels[entry.channel if entry.channel < 8 else 0].settings
        if p.decoded.portnum not in NOT_PKI and not radio.owner.is_licensed and radio.config.security.private_key:
            key = radio.nodedb.key_of(p.to)
            if key:
                pki = True
            elif radio.profile.refuses_dm_without_key:
                radio.debug(f"Unknown public key for destination node 0x{p.to:08x}, refusing to send legacy DM")
                self._nak_from_us(p.id, Err.PKI_SEND_FAIL_PUBLIC_KEY)
                return Err.PKI_SEND_FAIL_PUBLIC_KEY
        if p.want_ack:
            with self._lock:
                self._waiting[p.id] = firmware.RELIABLE_RETRIES
        self._airtime()
        self._later(radio.ack_delay_s / 2, self._transmit, p, pki, channel, True)
        return None

    def _transmit(self, p: mesh_pb2.MeshPacket, pki: bool, channel: channel_pb2.ChannelSettings,
                  first: bool) -> None:
        radio = self.radio
        node = radio.nodes.get(p.to)
        reachable = node is not None and p.to not in radio.unreachable
        if reachable and node.hops_away >= 1 and first and p.want_ack:
            # ReliableRouter.cpp:42-62: a relay's rebroadcast of our packet, heard by us, is an
            # implicit ACK from our own node, and stops our retransmissions.
            self._later(radio.ack_delay_s, self._implicit_ack, p.id)
        if reachable:
            answers = deliver_to_node(node, p, pki=pki, channel=channel, preset=radio.preset,
                                      sender_key=bytes(radio.keys.public))
            for answer in answers:
                self._later(radio.ack_delay_s * (1 + node.hops_away), self.hear, answer, node, None)
            if answers:
                return
        if not p.want_ack:
            return
        with self._lock:
            tries = self._waiting.get(p.id)
            if tries is None:
                return            # answered (or implicitly acknowledged) meanwhile
            if tries > 1:
                self._waiting[p.id] = tries - 1
            else:
                del self._waiting[p.id]
        if tries > 1:
            self._airtime()
            self._later(radio.retransmit_s, self._transmit, p, pki, channel, False)
        else:
            self._nak_from_us(p.id, Err.MAX_RETRANSMIT)

    def _implicit_ack(self, packet_id: int) -> None:
        with self._lock:
            if self._waiting.pop(packet_id, None) is None:
                return
        self._nak_from_us(packet_id, Err.NONE)

    def hourly_tx_percent(self) -> float:
        cutoff = time.monotonic() - 3600
        while self.tx_log and self.tx_log[0][0] < cutoff:
            self.tx_log.popleft()
        return 100.0 * (sum(a for _, a in self.tx_log) + self.duty_cycle_used_s) / 3600

    def _airtime(self) -> None:
        self.tx_log.append((time.monotonic(), AIRTIME_S))

    def broadcast_nodeinfo(self) -> None:
        """Our NodeInfo on the air: every node in reach now knows the station radio's key."""
        self._airtime()
        for node in self.radio.nodes.values():
            if node.num not in self.radio.unreachable and \
                    same_channel(node.channel, self.radio.channels[0].settings, self.radio.preset):
                node.knows_station_key = True

    # -- from the air ----------------------------------------------------------------------------
    def hear(self, packet: mesh_pb2.MeshPacket, sender: Bracelet | None,
             channel: channel_pb2.ChannelSettings | None) -> None:
        radio = self.radio
        if not radio.powered:
            return
        to = packet.to
        if to != BROADCAST and to != radio.node_num:
            return                  # not for us: relayed perhaps, never handed to the host
        if sender is not None:
            sealed = seal(sender, packet, radio.node_num)
        else:
            sealed = Sealed(packet, channel or public_channel(), False, b"")
        got = self._open(sealed, sender)
        if got.HasField("decoded"):
            self._update_nodedb(got)
            if got.decoded.portnum == PORT.ROUTING_APP and got.decoded.request_id:
                with self._lock:
                    self._waiting.pop(got.decoded.request_id, None)
        radio.deliver(got)
        if got.HasField("decoded") and to == radio.node_num and packet.want_ack and sender is not None \
                and got.decoded.portnum != PORT.ROUTING_APP:
            self._airtime()         # our ACK goes back over the air; the host never sees it

    def _open(self, sealed: Sealed, sender: Bracelet | None) -> mesh_pb2.MeshPacket:
        """Router.cpp perhapsDecode: PKI first for a DM to us, then each channel's key."""
        radio = self.radio
        p = sealed.packet
        if sealed.pki:
            known = radio.nodedb.key_of(getattr(p, "from"))
            if known and known == sealed.sender_key:
                got = mesh_pb2.MeshPacket()
                got.CopyFrom(p)
                got.channel = 0
                got.pki_encrypted = True
                got.public_key = known
                return got
            radio.debug("PKC decrypt attempted but failed!" if known else "PKI packet from unknown node")
            if p.want_ack and sender is not None:
                # ReliableRouter.cpp sniffReceived: tell the sender we lack its key.
                self._airtime()
            return sealed.encrypted_copy(radio.preset)
        index = self.channel_index(sealed.channel)
        if index is None:
            return sealed.encrypted_copy(radio.preset)
        if radio.profile.rejects_legacy_text_dm and p.to == radio.node_num and \
                p.decoded.portnum == PORT.TEXT_MESSAGE_APP:
            radio.debug("Rejecting legacy DM")
            return sealed.encrypted_copy(radio.preset)
        got = mesh_pb2.MeshPacket()
        got.CopyFrom(p)
        got.channel = index
        got.transport_mechanism = mesh_pb2.MeshPacket.TransportMechanism.TRANSPORT_LORA
        return got

    def _update_nodedb(self, p: mesh_pb2.MeshPacket) -> None:
        """NodeDB.cpp updateFrom / updateUser / updatePosition / updateTelemetry."""
        radio = self.radio
        num = getattr(p, "from")
        if num == radio.node_num:
            return
        entry = radio.nodedb.get_or_create(num)
        entry.last_heard = p.rx_time or radio.now()
        entry.snr = p.rx_snr
        if p.hop_start:
            entry.hops_away = p.hop_start - p.hop_limit
        port = p.decoded.portnum
        try:
            if port == PORT.NODEINFO_APP:
                user = mesh_pb2.User.FromString(p.decoded.payload)
                if entry.public_key and bytes(user.public_key) != entry.public_key:
                    radio.debug("Public Key mismatch, dropping NodeInfo")
                    return
                user.id = f"!{num:08x}"
                entry.user = user
                entry.channel = p.channel
            elif port == PORT.POSITION_APP:
                pos = mesh_pb2.Position.FromString(p.decoded.payload)
                if pos.latitude_i or pos.longitude_i:
                    entry.position = pos
            elif port == PORT.TELEMETRY_APP:
                t = telemetry_pb2.Telemetry.FromString(p.decoded.payload)
                if t.HasField("device_metrics"):
                    entry.metrics = t.device_metrics
        except Exception:
            radio.debug(f"Invalid protobufs in received mesh packet id=0x{p.id:08x}")

    def default_channel_is_primary(self) -> bool:
        return is_default_channel(self.radio.channels[0].settings, self.radio.preset)
