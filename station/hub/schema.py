"""The hub's own database (never a station's): what each station said, applied once."""

from __future__ import annotations

from typing import Callable

import sqlite_utils


def _v1(db: sqlite_utils.Database) -> None:
    # (station, seq) applied: the broker may deliver a message twice, a station may send it again.
    db.execute("CREATE TABLE applied (station TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, "
               "PRIMARY KEY (station, seq)) WITHOUT ROWID")
    db["stations"].create({"id": str, "first_seen": float, "last_seen": float, "last_seq": int, "events": int},
                          pk="id", defaults={"events": 0})
    db["hub_incidents"].create({
        "id": int, "node_num": int, "packet_id": int, "opened_at": float, "source": str, "trust": str,
        "drill": int, "state": str, "duress": int, "acknowledged_by": str, "acknowledged_at": float,
        "acknowledged_station": str, "resolved_by": str, "resolved_at": float, "resolution": str,
        "lat": float, "lon": float, "place": str,
    }, pk="id", defaults={"state": "open", "duress": 0, "drill": 0})
    db.execute("CREATE INDEX hub_incidents_packet ON hub_incidents(node_num, packet_id)")
    db.execute("CREATE INDEX hub_incidents_live ON hub_incidents(node_num, state)")
    # Each station's own alert for a hub incident, with what it heard (SNR, hops, when).
    db["receptions"].create({
        "station": str, "local_incident": int, "hub_incident": int, "snr": float, "hops": int,
        "heard_at": float, "opened_at": float, "state": str,
    }, pk=("station", "local_incident"))
    db["receptions"].create_index(["hub_incident"])
    db["claims"].create({"hub_incident": int, "destination": str, "station": str, "granted_at": float},
                        pk=("hub_incident", "destination"))
    # What the hub owes each station, kept until the broker has it.
    db.execute("CREATE TABLE outgoing (id INTEGER PRIMARY KEY AUTOINCREMENT, station TEXT NOT NULL, "
               "body TEXT NOT NULL, created_at REAL NOT NULL, published_at REAL)")
    db.execute("CREATE INDEX outgoing_unpublished ON outgoing(id) WHERE published_at IS NULL")


def _v2(db: sqlite_utils.Database) -> None:
    # The status page: the newest live alerts without walking a week's backlog (views.py).
    db.execute("CREATE INDEX hub_incidents_state ON hub_incidents(state, id)")


def _v3(db: sqlite_utils.Database) -> None:
    """What the hub's console shows besides the alerts: each station's health as it last said it
    (and where it is), how many presses each alert has had, and each post and who made it."""
    for col, typ in (("health", str), ("health_at", float), ("lat", float), ("lon", float)):
        db["stations"].add_column(col, typ)
    db["hub_incidents"].add_column("press_count", int, not_null_default=1)
    db["hub_incidents"].add_column("fix_at", float)
    db["posts"].create({"hub_incident": int, "station": str, "destination": str, "kind": str, "seq": int,
                        "state": str, "url": str, "claim": str, "at": float},
                       pk=("hub_incident", "station", "destination", "kind", "seq"))


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3]


def migrate(db: sqlite_utils.Database) -> int:
    from station.storage.migrations import apply
    return apply(db, MIGRATIONS, "hub database")
