"""Incidents ("alerts" to operators): opening, folding repeated presses, cancel and duress,
acknowledgement and resolution, each step written to the append-only event log.

All functions run inside a writer transaction and return `Effect`s that the daemon acts on
only after the commit (ring the buzzer, send the receipt).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from station import pins, press_tests, registry
from station.decode.packets import Alert, Cancel, Position
from station.errors import Refusal

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
RESOLUTIONS = ("safe", "false_alarm", "drill")


@dataclass(frozen=True)
class Effect:
    kind: str                 # opened, folded, cancelled, duress, cancel_rejected, acknowledged, resolved,
                              # press_test
    incident_id: int
    node_num: int | None = None
    trust: str | None = None


def log_event(db: sqlite_utils.Database, incident_id: int | None, at: float, actor: str, action: str,
              detail: str = "") -> None:
    db.execute("INSERT INTO events (incident_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
               (incident_id, at, actor, action, detail))


def _open_incident_of(db: sqlite_utils.Database, num: int) -> tuple | None:
    return db.execute(
        "SELECT id, last_press_at, state FROM incidents WHERE node_num=? AND state != 'resolved' "
        "ORDER BY id DESC LIMIT 1", (num,)).fetchone()


def last_fix(db: sqlite_utils.Database, num: int) -> tuple | None:
    """The newest live fix (a replay from the radio's cache is history, not news)."""
    return db.execute(
        "SELECT lat, lon, received_at, source, precision_bits FROM positions WHERE node_num=? AND cached=0 "
        "ORDER BY id DESC LIMIT 1", (num,)).fetchone()


def raise_alert(db: sqlite_utils.Database, num: int, alert: Alert, at: float, *, packet_row: int | None,
                fold_window_s: float, drill: bool, fix: Position | None = None) -> Effect:
    test = press_tests.take(db, num, at)
    if test is not None and (trust := registry.trust_of(db, num)) != registry.IMPOSTOR:
        return _press_test(db, test, num, alert, at, packet_row, fix, trust)
    current = _open_incident_of(db, num)
    if current is not None and at - current[1] <= fold_window_s:
        db.execute("UPDATE incidents SET press_count = press_count + 1, last_press_at=? WHERE id=?",
                   (at, current[0]))
        log_event(db, current[0], at, "wearer", "pressed again", alert.source)
        return Effect("folded", current[0], num)
    trust = registry.trust_of(db, num)
    if fix is not None:
        lat, lon, fix_at, fix_source, bits = fix.lat, fix.lon, at, fix.source, fix.precision_bits
    else:
        # An alert without a fix still carries the last known position, with its age.
        last = last_fix(db, num)
        lat, lon, fix_at, fix_source, bits = last if last else (None, None, None, None, None)
    cur = db.execute(
        """INSERT INTO incidents (node_num, opened_at, last_press_at, press_count, source, state, trust,
               duress, drill, lat, lon, fix_at, fix_source, opening_packet, message, fix_precision_bits)
           VALUES (?,?,?,1,?,'open',?,0,?,?,?,?,?,?,?,?)""",
        (num, at, at, alert.source, trust, int(drill), lat, lon, fix_at, fix_source, packet_row,
         alert.text[:200], bits))
    iid = cur.lastrowid
    detail = f"{alert.source}; trust {trust}" + ("; drill" if drill else "")
    log_event(db, iid, at, "wearer", "alert opened", detail)
    return Effect("opened", iid, num, trust)


def _press_test(db: sqlite_utils.Database, test: int, num: int, alert: Alert, at: float, packet_row: int | None,
                fix: Position | None, trust: str) -> Effect:
    """The press a technician is waiting for: stored as an incident closed at once (no alarm, no
    relay: the relay plans nothing for a resolved incident), marked as a test."""
    lat, lon, bits = (fix.lat, fix.lon, fix.precision_bits) if fix is not None else (None, None, None)
    cur = db.execute(
        """INSERT INTO incidents (node_num, opened_at, last_press_at, press_count, source, state, resolution,
               resolved_at, resolved_by, trust, duress, drill, press_test, lat, lon, fix_at, fix_source,
               opening_packet, message, fix_precision_bits)
           VALUES (?,?,?,1,?,'resolved','drill',?,'press test',?,0,1,1,?,?,?,?,?,?,?)""",
        (num, at, at, alert.source, at, trust, lat, lon, at if fix else None,
         fix.source if fix else None, packet_row, alert.text[:200], bits))
    iid = cur.lastrowid
    log_event(db, iid, at, "wearer", "alert opened", f"{alert.source}; press test")
    press_tests.passed(db, test, iid, packet_row, at)
    return Effect("press_test", iid, num, trust)


def cancel(db: sqlite_utils.Database, num: int, c: Cancel, at: float, pin_key: pins.PinKey | None) -> Effect | None:
    """A cancel with PIN. The duress PIN looks like a cancel to the wearer's side (the same
    receipt) but keeps the incident open and escalates it here."""
    current = _open_incident_of(db, num)
    if current is None:
        log_event(db, None, at, "wearer", "cancel without open alert", f"node !{num:08x}")
        return None
    iid = current[0]
    cancel_hash, duress_hash = registry.pin_hashes(db, num)
    # Both hashes are always computed, so timing does not tell which PIN was used.
    is_cancel = pin_key is not None and pin_key.verify(c.pin, cancel_hash)
    is_duress = pin_key is not None and pin_key.verify(c.pin, duress_hash)
    if is_duress:
        db.execute("UPDATE incidents SET duress=1, state='open', acknowledged_at=NULL, acknowledged_by=NULL "
                   "WHERE id=?", (iid,))
        log_event(db, iid, at, "wearer", "DURESS", "cancel sent with the duress PIN: escalated")
        return Effect("duress", iid, num)
    if is_cancel:
        db.execute("UPDATE incidents SET state='resolved', resolution='safe', resolved_at=?, resolved_by='wearer' "
                   "WHERE id=?", (at, iid))
        log_event(db, iid, at, "wearer", "resolved", "safe (cancel with PIN)")
        return Effect("cancelled", iid, num)
    reason = "no PIN is registered for this bracelet" if not cancel_hash else "wrong PIN"
    log_event(db, iid, at, "wearer", "cancel rejected", reason)
    return Effect("cancel_rejected", iid, num)


def follow_position(db: sqlite_utils.Database, num: int, pos: Position, at: float) -> None:
    """Keep the open incident's position current as the wearer moves, with its precision."""
    db.execute("UPDATE incidents SET lat=?, lon=?, fix_at=?, fix_source=?, fix_precision_bits=? "
               "WHERE node_num=? AND state != 'resolved'", (pos.lat, pos.lon, at, pos.source, pos.precision_bits, num))


class IncidentError(Refusal):
    pass


def acknowledge(db: sqlite_utils.Database, iid: int, actor: str, at: float) -> Effect:
    row = db.execute("SELECT state FROM incidents WHERE id=?", (iid,)).fetchone()
    if row is None:
        raise IncidentError("there is no alert {iid}", iid=iid)
    if row[0] != OPEN:
        raise IncidentError("alert {iid} is {state}, not open", iid=iid, state=row[0])
    db.execute("UPDATE incidents SET state='acknowledged', acknowledged_at=?, acknowledged_by=? WHERE id=?",
               (at, actor, iid))
    log_event(db, iid, at, actor, "acknowledged")
    return Effect("acknowledged", iid)


def acknowledge_newest(db: sqlite_utils.Database, actor: str, at: float) -> Effect | None:
    row = db.execute("SELECT id FROM incidents WHERE state='open' ORDER BY opened_at DESC LIMIT 1").fetchone()
    return acknowledge(db, row[0], actor, at) if row else None


def resolve(db: sqlite_utils.Database, iid: int, resolution: str, actor: str, at: float) -> Effect:
    if resolution not in RESOLUTIONS:
        raise IncidentError("resolution must be one of {choices}", choices=", ".join(RESOLUTIONS))
    row = db.execute("SELECT state FROM incidents WHERE id=?", (iid,)).fetchone()
    if row is None:
        raise IncidentError("there is no alert {iid}", iid=iid)
    if row[0] == RESOLVED:
        raise IncidentError("alert {iid} is already resolved", iid=iid)
    db.execute("UPDATE incidents SET state='resolved', resolution=?, resolved_at=?, resolved_by=?, "
               "drill = CASE WHEN ?='drill' THEN 1 ELSE drill END WHERE id=?",
               (resolution, at, actor, resolution, iid))
    log_event(db, iid, at, actor, "resolved", resolution)
    return Effect("resolved", iid)


def add_note(db: sqlite_utils.Database, iid: int, text: str, actor: str, at: float) -> Effect:
    text = text.strip()
    if not text or len(text) > 2000:
        raise IncidentError("a note is 1 to 2000 characters")
    if db.execute("SELECT 1 FROM incidents WHERE id=?", (iid,)).fetchone() is None:
        raise IncidentError("there is no alert {iid}", iid=iid)
    log_event(db, iid, at, actor, "note", text)
    return Effect("noted", iid)
