"""What the station must know about the firmware on the radio it talks to, by version.

Read from github:meshtastic/firmware (paths are firmware paths). The station learns the version
from the handshake's DeviceMetadata and adapts: how it checks that the radio is alive, how far
apart it sends texts, whether a bracelet's key must be in the radio before a DM, and which
packets after a handshake are replays rather than news.
"""

from __future__ import annotations

from meshtastic.protobuf import mesh_pb2, portnums_pb2, telemetry_pb2


def version_tuple(version: str | None) -> tuple[int, int, int]:
    """"2.7.26.54e0d8d" -> (2, 7, 26); missing or unreadable parts count as 0."""
    parts: list[int] = []
    for piece in (version or "").split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def answers_heartbeat(version: str | None) -> bool:
    """PhoneAPI.cpp:216-234 (PR #7506): a heartbeat is answered with queueStatus from v2.7.4.
    Older firmware stays silent, so silence after a heartbeat proves nothing there."""
    return version_tuple(version) >= (2, 7, 4)


def text_spacing_s(version: str | None) -> float:
    """PhoneAPI.cpp handleToRadioPacket: from v2.7.0 a text within TWO_SECONDS_MS of the previous
    one is dropped while queueStatus reports success. A margin covers the serial transit."""
    return 2.5 if version_tuple(version) >= (2, 7, 0) else 1.0


def dm_needs_key(version: str | None) -> bool:
    """Router.cpp:659-664: from v2.7.19 a DM to a node whose key is not in the radio's NodeDB is
    refused (PKI_SEND_FAIL_PUBLIC_KEY) instead of going out channel-encrypted."""
    return version_tuple(version) >= (2, 7, 19)


def nodeinfo_ping(version: str | None) -> bool:
    """PhoneAPI.cpp:225-229 (from v2.7.23): a heartbeat with nonce 1 makes the radio broadcast its
    NodeInfo, so that nodes which lost its key learn it again."""
    return version_tuple(version) >= (2, 7, 23)


MIN_LIVENESS_VERSION = "2.7.4"


def replay_packet_id(num: int, timestamp: int, kind: int) -> int:
    """develop (2.8) PhoneAPI.cpp makeReplayPacketId: the id a replayed cached record carries, so
    that the same history replayed at every reconnect keeps its id."""
    m = 0xFFFFFFFF
    h = num & m
    h = (h * 2654435761 + (timestamp & m)) & m
    h = (h * 2654435761 + kind) & m
    return h or 1


def is_cache_replay(packet: mesh_pb2.MeshPacket) -> bool:
    """A position or device-metrics packet that a 2.8 radio replayed from its cache after the
    handshake (PhoneAPI.cpp:1236-1290), not one heard now. Such packets are broadcasts whose id
    is derived from the sender, the record's time and its kind: a live packet's random id matches
    that by chance once in four billion."""
    if not packet.HasField("decoded") or packet.to != 0xFFFFFFFF or not packet.rx_time:
        return False
    port = packet.decoded.portnum
    sender = getattr(packet, "from")
    if port == portnums_pb2.PortNum.POSITION_APP:
        kind = portnums_pb2.PortNum.POSITION_APP
    elif port == portnums_pb2.PortNum.TELEMETRY_APP:
        try:
            which = telemetry_pb2.Telemetry.FromString(packet.decoded.payload).WhichOneof("variant")
        except Exception:
            return False
        field = telemetry_pb2.Telemetry.DESCRIPTOR.fields_by_name.get(which or "")
        if field is None:
            return False
        kind = field.number
    elif port == portnums_pb2.PortNum.NODE_STATUS_APP:
        kind = portnums_pb2.PortNum.NODE_STATUS_APP
    else:
        return False
    return packet.id == replay_packet_id(sender, packet.rx_time, kind)


def excluded_modules(mask: int) -> list[str]:
    """DeviceMetadata.excluded_modules as names (mesh.proto ExcludedModules)."""
    return [name for name, bit in mesh_pb2.ExcludedModules.items() if bit and mask & bit]
