"""The events this station owes the hub, written by SQLite triggers in the same transaction as the
change they report: an alert stored is an event queued, whichever process stored it (the daemon,
the console acknowledging, a command resolving), and a power cut between the two cannot happen.

Each event has its sequence number (the queue's rowid): the hub applies each (station, seq) once,
whatever the broker redelivers, and a station that was offline for a week sends its backlog in
order. Positions leave the station at the precision [network] precision allows (link.py)."""

from __future__ import annotations

import json

import sqlite_utils

_PACKET = "(SELECT {col} FROM packets WHERE id = NEW.opening_packet)"
_OPENED = f"""json_object('incident', NEW.id, 'node', NEW.node_num, 'opened_at', NEW.opened_at,
    'source', NEW.source, 'trust', NEW.trust, 'drill', NEW.drill, 'state', NEW.state, 'lat', NEW.lat,
    'lon', NEW.lon, 'packet_id', {_PACKET.format(col="packet_id")}, 'snr', {_PACKET.format(col="snr")},
    'hops', {_PACKET.format(col="hops")}, 'heard_at', {_PACKET.format(col="received_at")})"""
_STATE = """json_object('incident', NEW.id, 'state', NEW.state, 'duress', NEW.duress,
    'acknowledged_by', NEW.acknowledged_by, 'acknowledged_at', NEW.acknowledged_at,
    'resolved_by', NEW.resolved_by, 'resolved_at', NEW.resolved_at, 'resolution', NEW.resolution)"""
# The station's clock is the writer's: a trigger cannot call it, so an event takes the time of
# what it reports.
TRIGGERS = {
    "network_incident_opened": f"""CREATE TRIGGER IF NOT EXISTS network_incident_opened AFTER INSERT ON incidents
        WHEN NEW.press_test = 0
        BEGIN INSERT INTO network_queue (kind, body, created_at) VALUES ('incident', {_OPENED}, NEW.opened_at); END""",
    "network_incident_state": f"""CREATE TRIGGER IF NOT EXISTS network_incident_state
        AFTER UPDATE OF state, duress ON incidents
        WHEN NEW.press_test = 0 AND (NEW.state IS NOT OLD.state OR NEW.duress IS NOT OLD.duress)
        BEGIN INSERT INTO network_queue (kind, body, created_at)
              VALUES ('state', {_STATE}, COALESCE(NEW.resolved_at, NEW.acknowledged_at, NEW.opened_at)); END""",
    # Her position as it moves, while the alert is live.
    "network_incident_moved": """CREATE TRIGGER IF NOT EXISTS network_incident_moved AFTER UPDATE OF lat, lon ON incidents
        WHEN NEW.press_test = 0 AND NEW.state != 'resolved' AND (NEW.lat IS NOT OLD.lat OR NEW.lon IS NOT OLD.lon)
        BEGIN INSERT INTO network_queue (kind, body, created_at) VALUES ('position', json_object('incident', NEW.id,
              'lat', NEW.lat, 'lon', NEW.lon, 'fix_at', NEW.fix_at), COALESCE(NEW.fix_at, NEW.last_press_at)); END""",
    "network_incident_pressed": """CREATE TRIGGER IF NOT EXISTS network_incident_pressed
        AFTER UPDATE OF press_count ON incidents WHEN NEW.press_test = 0 AND NEW.press_count IS NOT OLD.press_count
        BEGIN INSERT INTO network_queue (kind, body, created_at) VALUES ('presses', json_object('incident', NEW.id,
              'press_count', NEW.press_count, 'last_press_at', NEW.last_press_at), NEW.last_press_at); END""",
    # What became of each post: the hub shows who posted what, and where.
    "network_post": """CREATE TRIGGER IF NOT EXISTS network_post AFTER UPDATE OF state ON outbox
        WHEN NEW.state IN ('sent', 'failed', 'uncertain', 'cancelled') AND NEW.state IS NOT OLD.state
        BEGIN INSERT INTO network_queue (kind, body, created_at) VALUES ('post', json_object('incident',
              NEW.incident_id, 'destination', NEW.destination, 'kind', NEW.kind, 'seq', NEW.seq, 'state', NEW.state,
              'url', NEW.url, 'claim', NEW.claim), NEW.updated_at); END""",
}


def health(db: sqlite_utils.Database, body: dict, at: float) -> None:
    """The station's health: only the newest waits in the queue (after a week away the hub needs
    how the station is, not how it was every minute)."""
    db.execute("DELETE FROM network_queue WHERE kind='health' AND published_at IS NULL")
    put(db, "health", body, at)


def install(db: sqlite_utils.Database) -> None:
    for sql in TRIGGERS.values():
        db.execute(sql)


def uninstall(db: sqlite_utils.Database) -> None:
    """[network] turned off: nothing more is queued (what is queued stays, for a later return)."""
    for name in TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")


def put(db: sqlite_utils.Database, kind: str, body: dict, at: float) -> int:
    return db.execute("INSERT INTO network_queue (kind, body, created_at) VALUES (?,?,?)",
                      (kind, json.dumps(body), at)).lastrowid


def unpublished(db: sqlite_utils.Database, after: int, limit: int) -> list[tuple[int, str, str, float]]:
    return db.execute("SELECT seq, kind, body, created_at FROM network_queue WHERE published_at IS NULL AND seq > ? "
                      "ORDER BY seq LIMIT ?", (after, limit)).fetchall()


def depth(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COUNT(*) FROM network_queue WHERE published_at IS NULL").fetchone()[0]


def confirm(db: sqlite_utils.Database, ranges: list[tuple[int, int]], at: float) -> None:
    """The hub applied these (station, seq) ranges: nothing of them is ever sent again."""
    db.conn.executemany("UPDATE network_queue SET confirmed_at=? WHERE seq BETWEEN ? AND ? AND confirmed_at IS NULL",
                        [(at, a, b) for a, b in ranges])


def confirmed_upto(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COALESCE(MAX(seq), 0) FROM network_queue WHERE confirmed_at IS NOT NULL").fetchone()[0]


def lost(db: sqlite_utils.Database, upto: int, published_before: float, limit: int) -> list[tuple]:
    """Published rows the hub has not confirmed though it confirmed later ones: lost on the way."""
    return db.execute("SELECT seq, kind, body, created_at FROM network_queue WHERE confirmed_at IS NULL AND seq < ? "
                      "AND published_at IS NOT NULL AND published_at < ? ORDER BY seq LIMIT ?",
                      (upto, published_before, limit)).fetchall()


def unconfirmed(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COUNT(*) FROM network_queue WHERE confirmed_at IS NULL").fetchone()[0]
