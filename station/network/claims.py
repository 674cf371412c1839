"""One post however many stations hear the alert. Before a post leaves for a public destination,
the station asks the hub for the claim on (alert, destination), through its event queue, so the
question reaches the hub after the alert it is about. The hub grants the first station to ask
and tells the others who holds it; a station that is told no cancels its row, with the holder
named.

With the hub unreachable the station posts anyway once `claim_wait_s` has passed without an
answer, and the post is marked "posted without the hub's claim" for a coordinator to check: a
wearer who consented to publication is not left unpublished because a server in another town is
down (the stations must work alone), and a post twice is the lesser harm, and a visible one."""

from __future__ import annotations

import sqlite_utils

from station.network import queue

GRANTED, DENIED, WAIT, ALONE = "granted", "denied", "wait", "alone"


def gate(db: sqlite_utils.Database, iid: int, destination: str, now: float, wait_s: float) -> tuple[str, str | None]:
    """(verdict, holder). Asks the hub the first time (in the caller's transaction)."""
    row = db.execute("SELECT state, holder, requested_at FROM network_claims WHERE incident_id=? AND destination=?",
                     (iid, destination)).fetchone()
    if row is None:
        db.execute("INSERT INTO network_claims (incident_id, destination, state, requested_at) VALUES (?,?,?,?)",
                   (iid, destination, "requested", now))
        queue.put(db, "claim", {"incident": iid, "destination": destination}, now)
        return WAIT, None
    state, holder, asked = row
    if state == GRANTED:
        return GRANTED, holder
    if state == DENIED:
        return DENIED, holder
    if state == ALONE:
        return ALONE, None
    if now - asked >= wait_s:
        db.execute("UPDATE network_claims SET state='alone', answered_at=? WHERE incident_id=? AND destination=?",
                   (now, iid, destination))
        return ALONE, None
    return WAIT, None


def answered(db: sqlite_utils.Database, iid: int, destination: str, granted: bool, holder: str, at: float) -> None:
    from station.incidents import log_event
    from station.wording import Wording
    row = db.execute("SELECT state FROM network_claims WHERE incident_id=? AND destination=?",
                     (iid, destination)).fetchone()
    if row is not None and row[0] == ALONE and not granted:
        # Too late: this station posted alone, and the hub gave the claim to another.
        log_event(db, iid, at, "hub", "claim refused after posting",
                  Wording("{destination}: the hub gave the claim to station {holder}; this station had posted without "
                          "it: check for a second post", destination=destination, holder=holder))
    if row is not None and row[0] == ALONE:
        return
    db.execute("INSERT INTO network_claims (incident_id, destination, state, holder, answered_at) VALUES (?,?,?,?,?) "
               "ON CONFLICT(incident_id, destination) DO UPDATE SET state=excluded.state, holder=excluded.holder, "
               "answered_at=excluded.answered_at", (iid, destination, GRANTED if granted else DENIED, holder, at))
