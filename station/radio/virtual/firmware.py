"""What changed between the Meshtastic firmware releases the virtual radio can play.

Each switch below is read from the firmware's own source (github:meshtastic/firmware; paths are
firmware paths, lines are v2.7.26's unless a tag is named). The virtual radio behaves as the
profile says and nothing else: when a real radio and this file disagree, the firmware is right
and this file is the bug.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FirmwareProfile:
    name: str                       # what --firmware takes
    version: str                    # DeviceMetadata.firmware_version, as the firmware reports it
    # PhoneAPI.cpp:216-234 (PR #7506, first in v2.7.4): a heartbeat sets heartbeatReceived and the
    # next getFromRadio answers queueStatus. v2.6.11 and v2.7.0-2.7.3 only log "Got client heartbeat".
    answers_heartbeat: bool
    # PhoneAPI.cpp handleToRadioPacket: a TEXT_MESSAGE_APP within TWO_SECONDS_MS of the previous one
    # is dropped (present from v2.7.0; absent in v2.6.11). queueStatus still says res=0.
    text_limit_s: float
    # How the dropped text is reported: v2.7.0-2.7.3 queue a ClientNotification with reply_id =
    # the packet id ("Text messages can only be sent once every 2 seconds"); from v2.7.4 a routing
    # error RATE_LIMIT_EXCEEDED is sent to mp->from, which a client leaves 0, so it never arrives.
    text_limit_notice: str          # "notification", "lost" or "" (no limit)
    # Router.cpp:659-664 (from v2.7.19): a DM to a node without a key in the radio's NodeDB is
    # refused with PKI_SEND_FAIL_PUBLIC_KEY instead of falling back to the channel key.
    refuses_dm_without_key: bool
    # Router.cpp:500 (from v2.7.14): a text DM to us that came channel-encrypted, not PKI, is
    # dropped ("Rejecting legacy DM"): no ACK is sent, so the sender ends in MAX_RETRANSMIT.
    rejects_legacy_text_dm: bool
    # develop (2.8) PhoneAPI.cpp:1102-1114, 1236-1290: after config_complete_id the radio replays
    # its cached positions and device metrics as broadcast packets marked TRANSPORT_LORA, with ids
    # derived from (node, timestamp, kind), and other nodes' NodeInfos are sent thin.
    replays_cache: bool
    # PhoneAPI.cpp:225-229 (from v2.7.23): a heartbeat with nonce 1 makes the radio broadcast its
    # NodeInfo (so nodes re-learn its key) instead of answering queueStatus.
    nodeinfo_ping: bool = False

    @property
    def short(self) -> str:
        return self.version.split(".virtual")[0]


PROFILES: dict[str, FirmwareProfile] = {
    "2.6.11": FirmwareProfile("2.6.11", "2.6.11.60ec05e", answers_heartbeat=False, text_limit_s=0.0,
                              text_limit_notice="", refuses_dm_without_key=False,
                              rejects_legacy_text_dm=False, replays_cache=False),
    "2.7.3": FirmwareProfile("2.7.3", "2.7.3.cf574c7", answers_heartbeat=False, text_limit_s=2.0,
                             text_limit_notice="notification", refuses_dm_without_key=False,
                             rejects_legacy_text_dm=False, replays_cache=False),
    "2.7.26": FirmwareProfile("2.7.26", "2.7.26.54e0d8d", answers_heartbeat=True, text_limit_s=2.0,
                              text_limit_notice="lost", refuses_dm_without_key=True,
                              rejects_legacy_text_dm=True, replays_cache=False, nodeinfo_ping=True),
    "2.8": FirmwareProfile("2.8", "2.8.0.7754068", answers_heartbeat=True, text_limit_s=2.0,
                           text_limit_notice="lost", refuses_dm_without_key=True,
                           rejects_legacy_text_dm=True, replays_cache=True, nodeinfo_ping=True),
}
DEFAULT = "2.7.26"   # the newest release; 2.8 is `develop`, unreleased


def profile(name: str | None) -> FirmwareProfile:
    try:
        return PROFILES[name or DEFAULT]
    except KeyError:
        raise ValueError(f"unknown firmware profile {name!r}; known: {', '.join(PROFILES)}") from None


def nearest(version: str) -> FirmwareProfile:
    """The profile a flashed build behaves like: the newest one not newer than it (the oldest for
    a build older than every profile)."""
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split(".")[:3] if x.isdigit())
    older = [p for p in PROFILES.values() if key(p.version) <= key(version)]
    if not older:
        return min(PROFILES.values(), key=lambda p: key(p.version))
    return max(older, key=lambda p: key(p.version))


# PhoneAPI.cpp handleToRadioPacket (every profile): POSITION, WAYPOINT, ALERT and TELEMETRY from the
# client at most once per TEN_SECONDS_MS; TRACEROUTE once per THIRTY_SECONDS_MS.
PORT_LIMIT_S = 10.0
TRACEROUTE_LIMIT_S = 30.0
# mesh-pb-constants.h:17-23: packets waiting for the client.
CLIENT_QUEUE_ESP32 = 8
CLIENT_QUEUE_OTHERS = 32
# MeshService.cpp lastQueueStatus = {0, 0, 16, 0}: the transmit queue the client is told about.
TX_QUEUE = 16
# mesh-pb-constants.h:48-49: NodeDB size on nRF52; ESP32-S3 holds 100-250 depending on flash.
NODEDB_NRF52 = 80
# ReliableRouter / NUM_RELIABLE_RETX: a want_ack DM is sent up to 3 times before MAX_RETRANSMIT.
RELIABLE_RETRIES = 3
# PhoneAPI.h:23-24
NONCE_ONLY_CONFIG = 69420
NONCE_ONLY_NODES = 69421

