"""Row-level writes used inside writer jobs: packets (deduplicated), rejects, nodes, positions,
telemetry and the station state. Every function takes the open transaction's database."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils
from meshtastic.protobuf import mesh_pb2

from station.decode.packets import NodeInfo, Position, Telemetry, port_name
from station.nodeids import node_id

RAW_REJECT_MAX = 1024


def hops(p: mesh_pb2.MeshPacket) -> int | None:
    """Hops taken so far; unknown for firmware that does not send hop_start."""
    return p.hop_start - p.hop_limit if p.hop_start and p.hop_start >= p.hop_limit else None


def insert_packet(db: sqlite_utils.Database, p: mesh_pb2.MeshPacket, received_at: float,
                  decode: str = "ok", *, count_duplicate: bool = True) -> tuple[int, bool]:
    """Store the raw packet; returns (row id, is_new). A packet seen again only counts."""
    sender = getattr(p, "from")
    portnum = p.decoded.portnum if p.HasField("decoded") else None
    cur = db.execute(
        """INSERT OR IGNORE INTO packets (received_at, from_num, to_num, packet_id, portnum, port, channel,
               snr, rssi, hop_start, hop_limit, hops, via_mqtt, rx_time, raw, decode, duplicates, last_seen_at)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,?)""",
        (received_at, sender, p.to, p.id, portnum,
         port_name(portnum) if portnum is not None else "ENCRYPTED", p.channel,
         round(p.rx_snr, 2) if p.rx_snr else None, p.rx_rssi if p.rx_rssi else None, p.hop_start or None,
         p.hop_limit, hops(p), int(p.via_mqtt), p.rx_time or None, p.SerializeToString(), decode, received_at))
    if cur.rowcount == 1:
        return cur.lastrowid, True
    row = db.execute("SELECT id FROM packets WHERE from_num=? AND packet_id=?", (sender, p.id)).fetchone()
    if count_duplicate:
        db.execute("UPDATE packets SET duplicates = duplicates + 1, last_seen_at=? WHERE id=?", (received_at, row[0]))
    return row[0], False


def set_packet_decode(db: sqlite_utils.Database, row: int, decode: str) -> None:
    db.execute("UPDATE packets SET decode=? WHERE id=?", (decode[:200], row))


def insert_reject(db: sqlite_utils.Database, at: float, source: str, reason: str,
                  detail: str = "", raw: bytes | None = None) -> None:
    db.execute("INSERT INTO rejects (at, source, reason, detail, raw) VALUES (?,?,?,?,?)",
               (at, source, reason, detail[:300], raw[:RAW_REJECT_MAX] if raw else None))


def node_heard(db: sqlite_utils.Database, p: mesh_pb2.MeshPacket, at: float, *, live: bool = True) -> None:
    """The sender exists; `live`: heard now (a replay from the radio's cache must not make a
    silent bracelet look alive)."""
    num = getattr(p, "from")
    if not live:
        db.execute("INSERT OR IGNORE INTO nodes (num, node_id, first_heard) VALUES (?,?,?)", (num, node_id(num), at))
        return
    db.execute(
        """INSERT INTO nodes (num, node_id, first_heard, last_heard, snr, rssi, hops) VALUES (?,?,?,?,?,?,?)
           ON CONFLICT(num) DO UPDATE SET last_heard=excluded.last_heard,
               snr=COALESCE(excluded.snr, snr), rssi=COALESCE(excluded.rssi, rssi),
               hops=COALESCE(excluded.hops, hops)""",
        (num, node_id(num), at, at, round(p.rx_snr, 2) if p.rx_snr else None, p.rx_rssi or None, hops(p)))


def node_info(db: sqlite_utils.Database, num: int, info: NodeInfo) -> str | None:
    """Update names and key; returns the key seen before if this one differs from it."""
    row = db.execute("SELECT public_key FROM nodes WHERE num=?", (num,)).fetchone()
    before = row[0] if row else None
    db.execute(
        """UPDATE nodes SET long_name=?, short_name=?, hw_model=?, role=?,
               public_key=COALESCE(?, public_key) WHERE num=?""",
        (info.long_name, info.short_name, info.hw_model, info.role, info.public_key, num))
    if before and info.public_key and before != info.public_key:
        return before
    return None


def insert_position(db: sqlite_utils.Database, num: int | None, pos: Position, at: float,
                    packet_row: int | None, *, cached: bool = False, unverified: bool = False) -> None:
    """A fix; `cached`: replayed by a 2.8 radio from its memory, kept as history but never the
    node's current position (it is older than what we know, or at best the same); `unverified`:
    it claims a registered bracelet and proves nothing, kept apart and never her position."""
    db.execute(
        """INSERT INTO positions (node_num, packet, source, received_at, fix_at, lat, lon, alt, sats,
               precision_bits, quality, cached, unverified) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
        (num, packet_row, pos.source, at, pos.fix_time, pos.lat, pos.lon, pos.alt, pos.sats,
         pos.precision_bits, pos.quality, int(cached), int(unverified)))
    if num is not None and not cached and not unverified:
        db.execute("UPDATE nodes SET lat=?, lon=?, fix_at=?, fix_precision_bits=? WHERE num=?",
                   (pos.lat, pos.lon, at, pos.precision_bits, num))


def insert_telemetry(db: sqlite_utils.Database, num: int, t: Telemetry, at: float, packet_row: int,
                     *, cached: bool = False, unverified: bool = False) -> None:
    db.execute(
        """INSERT INTO telemetry (node_num, packet, received_at, battery_level, voltage, channel_util,
               air_util_tx, uptime_s, external_power, cached, unverified) VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
        (num, packet_row, at, t.battery_level, t.voltage, t.channel_util, t.air_util_tx, t.uptime_s,
         int(t.external_power), int(cached), int(unverified)))
    if not cached and not unverified:
        db.execute("UPDATE nodes SET battery_level=CASE WHEN ? THEN NULL ELSE COALESCE(?, battery_level) END, "
                   "voltage=COALESCE(?, voltage), external_power=? WHERE num=?",
                   (int(t.external_power), t.battery_level, t.voltage, int(t.external_power), num))


def set_state(db: sqlite_utils.Database, key: str, value: Any, at: float) -> None:
    db.execute("INSERT INTO station_state (key, value, updated_at) VALUES (?,?,?) "
               "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
               (key, json.dumps(value, default=str), at))


def get_state(db: sqlite_utils.Database, key: str) -> tuple[Any, float] | None:
    row = db.execute("SELECT value, updated_at FROM station_state WHERE key=?", (key,)).fetchone()
    return (json.loads(row[0]), row[1]) if row else None


def queue_receipt(db: sqlite_utils.Database, incident_id: int, node_num: int, kind: str, text: str,
                  at: float, *, priority: int = 0, sent: tuple[int, float] | None = None,
                  sending: bool = False) -> int:
    """`priority` 0: a verified wearer's, sent before any other; `sent`: (packet id, when) of one
    already sent from memory while the database was out; `sending`: one on its way from memory
    (receipts.MemoryReceipt). The row's id."""
    if sent is None:
        cur = db.execute("INSERT INTO receipts (incident_id, node_num, kind, text, state, created_at, updated_at, "
                         "priority, reason) VALUES (?,?,?,?,?,?,?,?,?)",
                         (incident_id, node_num, kind, text, "sending" if sending else "queued", at, at, priority,
                          "being sent from memory while the database was unavailable" if sending else None))
        return cur.lastrowid
    cur = db.execute("INSERT INTO receipts (incident_id, node_num, kind, text, state, created_at, updated_at, priority, "
               "packet_id, sent_at, attempts, reason) VALUES (?,?,?,?,'sent',?,?,?,?,?,1,?)",
               (incident_id, node_num, kind, text, sent[1], at, priority, sent[0], sent[1],
                "sent from memory while the database was unavailable"))
    return cur.lastrowid


def receipts_to_strangers(db: sqlite_utils.Database, since: float) -> int:
    return db.execute("SELECT COUNT(*) FROM receipts WHERE priority > 0 AND created_at >= ?", (since,)).fetchone()[0]
