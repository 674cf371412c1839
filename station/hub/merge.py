"""Applying one station event to the hub's database, exactly once, in one transaction.

The same SOS heard by three stations is one incident: the same mesh packet (sender and packet id)
always, and without a packet id (an alert raised with no packet, a watch alarm) the same wearer's
live incident within `fold_window_s`. Drills never merge with real alerts. Each station's own
alert for it is a reception, with what that station heard (SNR, hops, time).

An acknowledgement at one station is told to every other station that heard the alert (their
rooms stop ringing); an alert that reaches the hub after someone already acknowledged it elsewhere
is told at once. A claim on (incident, destination) goes to the first station to ask."""

from __future__ import annotations

import json
import logging

import sqlite_utils

log = logging.getLogger(__name__)


def apply(db: sqlite_utils.Database, station: str, seq: int, kind: str, at: float, data: dict, now: float,
          fold_window_s: float) -> bool:
    """False when (station, seq) was applied before (a redelivery): nothing changes."""
    if db.execute("INSERT OR IGNORE INTO applied (station, seq, at) VALUES (?,?,?)", (station, seq, now)).rowcount == 0:
        return False
    db.execute("INSERT INTO stations (id, first_seen, last_seen, last_seq, events) VALUES (?,?,?,?,1) "
               "ON CONFLICT(id) DO UPDATE SET last_seen=excluded.last_seen, last_seq=MAX(last_seq, excluded.last_seq), "
               "events=events+1", (station, now, now, seq))
    handler = {"incident": _incident, "state": _state, "claim": _claim, "position": _position, "presses": _presses,
               "post": _post, "health": _health}.get(kind)
    if handler is None:
        log.info("station %s sent an event of kind %r, which this hub does not know", station, kind)
        return True
    handler(db, station, data, now, fold_window_s)
    return True


def tell(db: sqlite_utils.Database, station: str, body: dict, at: float) -> None:
    db.execute("INSERT INTO outgoing (station, body, created_at) VALUES (?,?,?)", (station, json.dumps(body), at))


def _find(db, data: dict, fold_window_s: float) -> int | None:
    node, pid, drill = data.get("node"), data.get("packet_id"), int(bool(data.get("drill")))
    if pid:
        row = db.execute("SELECT id FROM hub_incidents WHERE node_num=? AND packet_id=? AND drill=?",
                         (node, pid, drill)).fetchone()
        if row:
            return row[0]
    opened = float(data.get("opened_at") or 0)
    row = db.execute("SELECT id FROM hub_incidents WHERE node_num=? AND drill=? AND state != 'resolved' "
                     "AND source IS ? AND ABS(opened_at - ?) <= ? ORDER BY id DESC LIMIT 1",
                     (node, drill, data.get("source"), opened, fold_window_s)).fetchone()
    return row[0] if row else None


def _incident(db, station: str, data: dict, now: float, fold_window_s: float) -> None:
    local = int(data["incident"])
    if db.execute("SELECT 1 FROM receptions WHERE station=? AND local_incident=?", (station, local)).fetchone():
        return
    hub = _find(db, data, fold_window_s)
    if hub is None:
        hub = db.execute(
            "INSERT INTO hub_incidents (node_num, packet_id, opened_at, source, trust, drill, state, lat, lon, place) "
            "VALUES (?,?,?,?,?,?,'open',?,?,?)",
            (data.get("node"), data.get("packet_id"), data.get("opened_at"), data.get("source"), data.get("trust"),
             int(bool(data.get("drill"))), data.get("lat"), data.get("lon"), data.get("place"))).lastrowid
    db.execute("INSERT INTO receptions (station, local_incident, hub_incident, snr, hops, heard_at, opened_at, state) "
               "VALUES (?,?,?,?,?,?,?,?)", (station, local, hub, data.get("snr"), data.get("hops"), data.get("heard_at"),
                                           data.get("opened_at"), data.get("state") or "open"))
    acked = db.execute("SELECT acknowledged_by, acknowledged_station, acknowledged_at FROM hub_incidents "
                       "WHERE id=? AND acknowledged_at IS NOT NULL", (hub,)).fetchone()
    if acked and acked[1] != station:
        tell(db, station, {"kind": "acknowledged", "incident": local, "by": acked[0], "station": acked[1],
                           "at": acked[2]}, now)


def _state(db, station: str, data: dict, now: float, fold_window_s: float) -> None:
    local = int(data["incident"])
    row = db.execute("SELECT hub_incident FROM receptions WHERE station=? AND local_incident=?",
                     (station, local)).fetchone()
    if row is None:
        return                      # an alert the hub never had (a press test, from before the network)
    hub, state = row[0], data.get("state")
    db.execute("UPDATE receptions SET state=? WHERE station=? AND local_incident=?", (state, station, local))
    if data.get("duress"):
        db.execute("UPDATE hub_incidents SET duress=1 WHERE id=?", (hub,))
    if state in ("acknowledged", "resolved"):
        by = data.get("acknowledged_by") or data.get("resolved_by") or "?"
        at = data.get("acknowledged_at") or data.get("resolved_at") or now
        first = db.execute("UPDATE hub_incidents SET acknowledged_by=?, acknowledged_station=?, acknowledged_at=? "
                           "WHERE id=? AND acknowledged_at IS NULL", (by, station, at, hub)).rowcount
        if first:
            for other, other_local in db.execute("SELECT station, local_incident FROM receptions WHERE hub_incident=? "
                                                 "AND station != ? AND state = 'open'", (hub, station)).fetchall():
                tell(db, other, {"kind": "acknowledged", "incident": other_local, "by": by, "station": station,
                                 "at": at}, now)
    if state == "acknowledged":
        db.execute("UPDATE hub_incidents SET state='acknowledged' WHERE id=? AND state='open'", (hub,))
    elif state == "resolved":
        db.execute("UPDATE hub_incidents SET state='resolved', resolved_by=?, resolved_at=?, resolution=? "
                   "WHERE id=? AND state != 'resolved'",
                   (data.get("resolved_by"), data.get("resolved_at"), data.get("resolution"), hub))


def _claim(db, station: str, data: dict, now: float, fold_window_s: float) -> None:
    local, destination = int(data["incident"]), str(data["destination"])[:64]
    row = db.execute("SELECT hub_incident FROM receptions WHERE station=? AND local_incident=?",
                     (station, local)).fetchone()
    if row is None:
        # Nothing to share it with: an alert only this station has (or one the hub never had).
        holder = station
    else:
        db.execute("INSERT OR IGNORE INTO claims (hub_incident, destination, station, granted_at) VALUES (?,?,?,?)",
                   (row[0], destination, station, now))
        holder = db.execute("SELECT station FROM claims WHERE hub_incident=? AND destination=?",
                            (row[0], destination)).fetchone()[0]
    tell(db, station, {"kind": "claim", "incident": local, "destination": destination, "granted": holder == station,
                       "holder": holder}, now)


def _hub_of(db, station: str, local: int) -> int | None:
    row = db.execute("SELECT hub_incident FROM receptions WHERE station=? AND local_incident=?",
                     (station, local)).fetchone()
    return row[0] if row else None


def _position(db, station: str, data: dict, now: float, fold_window_s: float) -> None:
    hub = _hub_of(db, station, int(data["incident"]))
    if hub is not None and data.get("lat") is not None:
        # The newest fix wins, whichever station heard it.
        db.execute("UPDATE hub_incidents SET lat=?, lon=?, place=?, fix_at=? WHERE id=? AND COALESCE(fix_at, 0) <= ?",
                   (data["lat"], data.get("lon"), data.get("place"), data.get("fix_at"), hub,
                    data.get("fix_at") or now))


def _presses(db, station: str, data: dict, now: float, fold_window_s: float) -> None:
    hub = _hub_of(db, station, int(data["incident"]))
    if hub is not None:
        db.execute("UPDATE hub_incidents SET press_count=MAX(press_count, ?) WHERE id=?",
                   (int(data.get("press_count") or 1), hub))


def _post(db, station: str, data: dict, now: float, fold_window_s: float) -> None:
    hub = _hub_of(db, station, int(data["incident"]))
    if hub is None:
        return
    db.execute("INSERT INTO posts (hub_incident, station, destination, kind, seq, state, url, claim, at) "
               "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(hub_incident, station, destination, kind, seq) DO UPDATE SET "
               "state=excluded.state, url=excluded.url, claim=excluded.claim, at=excluded.at",
               (hub, station, str(data["destination"])[:64], str(data.get("kind"))[:16], int(data.get("seq") or 0),
                str(data.get("state"))[:16], (data.get("url") or None) and str(data["url"])[:300],
                data.get("claim"), now))


def _health(db, station: str, data: dict, now: float, fold_window_s: float) -> None:
    db.execute("UPDATE stations SET health=?, health_at=?, lat=COALESCE(?, lat), lon=COALESCE(?, lon) WHERE id=?",
               (json.dumps(data)[:4000], now, data.get("lat"), data.get("lon"), station))
