"""The air between the station's radio and the virtual bracelets: who can read what.

A packet leaves a bracelet sealed the way its firmware seals it (Router.cpp perhapsEncode): a
DM to a node whose key it knows goes PKI (X25519), everything else under its primary channel's
key. A receiver reads it only with the matching key. The station's radio is one receiver
(`VirtualRadio.hear`); the bracelets are the others (`deliver_to_node`).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshtastic.protobuf import channel_pb2, mesh_pb2, portnums_pb2

from station.radio.virtual import firmware
from station.radio.virtual.bracelets import BROADCAST, Bracelet
from station.radio.channels import expand_psk
from station.radio.virtual.keys import aes_ctr, channel_hash, same_channel

PORT = portnums_pb2.PortNum
# Router.cpp:643-645: these ports never go PKI, even as DMs.
NOT_PKI = (PORT.TRACEROUTE_APP, PORT.NODEINFO_APP, PORT.ROUTING_APP, PORT.POSITION_APP)


@dataclass(frozen=True)
class Sealed:
    """A packet on the air: the clear packet, and how it was sealed."""
    packet: mesh_pb2.MeshPacket          # decoded, as the sender built it
    channel: channel_pb2.ChannelSettings
    pki: bool
    sender_key: bytes

    def encrypted_copy(self, preset: int) -> mesh_pb2.MeshPacket:
        """What a receiver without the key hands its client: the ciphertext and the channel hash."""
        p = mesh_pb2.MeshPacket()
        p.CopyFrom(self.packet)
        p.ClearField("decoded")
        data = self.packet.decoded.SerializeToString()
        p.encrypted = aes_ctr(expand_psk(self.channel.psk), p.id, getattr(p, "from"), data)
        p.channel = 0 if self.pki else channel_hash(self.channel, preset)
        return p


def seal(node: Bracelet, packet: mesh_pb2.MeshPacket, station_num: int | None) -> Sealed:
    dm = packet.to != BROADCAST
    pki = (dm and node.knows_station_key and packet.to == station_num
           and packet.decoded.portnum not in NOT_PKI)
    # The sender seals with its own key pair, whatever key it may claim in its NodeInfo.
    return Sealed(packet, node.channel, pki, node.keys.public)


def deliver_to_node(node: Bracelet, packet: mesh_pb2.MeshPacket, *, pki: bool,
                    channel: channel_pb2.ChannelSettings, preset: int,
                    sender_key: bytes = b"") -> list[mesh_pb2.MeshPacket]:
    """A DM from the station's radio reaching `node`. Returns what the node sends back: a reply
    to a request (which also acknowledges it), or a routing ACK/NAK to a want_ack packet, or
    nothing when it stays silent."""
    profile = firmware.profile(node.firmware)
    if pki:
        if not node.knows_station_key:
            # ReliableRouter.cpp sniffReceived: a PKI packet from a node whose key we lack.
            return [_answer(node, packet, mesh_pb2.Routing.PKI_UNKNOWN_PUBKEY)] if packet.want_ack else []
    else:
        if not same_channel(node.channel, channel, preset):
            return [_answer(node, packet, mesh_pb2.Routing.NO_CHANNEL)] if packet.want_ack else []
        if profile.rejects_legacy_text_dm and packet.decoded.portnum == PORT.TEXT_MESSAGE_APP:
            # Router.cpp:500 "Rejecting legacy DM": dropped without an answer.
            node.log.append("Rejecting legacy DM")
            return []
    got = mesh_pb2.MeshPacket()
    got.CopyFrom(packet)
    got.pki_encrypted = pki
    if packet.decoded.portnum == PORT.ADMIN_APP and hasattr(node, "admin"):
        answers = node.admin(got, pki=pki, sender_key=sender_key)
        if answers:
            return answers
        return [_answer(node, packet, mesh_pb2.Routing.NONE)] if packet.want_ack else []
    node.receive(got)
    if packet.decoded.want_response:
        reply = _reply(node, packet)
        if reply is not None:
            return [reply]     # "Another module replied to this message, no need for 2nd ack"
    return [_answer(node, packet, mesh_pb2.Routing.NONE)] if packet.want_ack else []


def _answer(node: Bracelet, packet: mesh_pb2.MeshPacket, error: int) -> mesh_pb2.MeshPacket:
    return node.routing_ack(packet.id, getattr(packet, "from"), error)


def _reply(node: Bracelet, request: mesh_pb2.MeshPacket) -> mesh_pb2.MeshPacket | None:
    """What the node's modules answer to a request: PositionModule, DeviceTelemetryModule,
    NodeInfoModule and TraceRouteModule (each allocReply)."""
    port = request.decoded.portnum
    to = getattr(request, "from")
    if port == PORT.POSITION_APP:
        reply = node.position()
    elif port == PORT.TELEMETRY_APP:
        reply = node.telemetry(80, 4.0)
    elif port == PORT.NODEINFO_APP:
        reply = node.nodeinfo()
    elif port == PORT.TRACEROUTE_APP:
        # TraceRouteModule: relays between us appear in the route; SNRs in quarter dB.
        relays = [0x0E1A0000 + i for i in range(node.hops_away)]
        snr = [int(round(request.rx_snr * 4)) or 24] * (len(relays) + 1)
        rd = mesh_pb2.RouteDiscovery(route=relays, snr_towards=snr, route_back=list(reversed(relays)),
                                     snr_back=snr)
        reply = node.packet(PORT.TRACEROUTE_APP, rd.SerializeToString())
    else:
        return None
    reply.to = to
    reply.decoded.request_id = request.id
    reply.decoded.want_response = False
    return reply
