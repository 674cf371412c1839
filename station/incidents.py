"""Incidents ("alerts" to operators): opening, folding repeated presses, cancel and duress,
acknowledgement and resolution, each step written to the append-only event log.

All functions run inside a writer transaction and return `Effect`s that the daemon acts on
only after the commit (ring the buzzer, send the receipt).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from station import pins, press_tests, registry, trust, wording
from station.decode.packets import Alert, Position
from station.errors import Refusal
from station.wording import Wording

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
    """Append to the event log. `action` and `detail` are plain text or `Wording`s; a wording's
    template and values are kept so the console shows it in the reader's language."""
    db.execute("INSERT INTO events (incident_id, at, actor, action, detail, wording) VALUES (?,?,?,?,?,?)",
               (incident_id, at, actor, action, detail, wording.stored(action, detail)))


def _open_incident_of(db: sqlite_utils.Database, num: int, *, verified: bool = True,
                      watch_alarms: bool = True) -> tuple | None:
    """The sender's live incident of the same trust class: a packet that proves nothing never folds
    into (or cancels) the wearer's verified alert, nor the other way round. One covered by a duress
    looks closed from outside, so nothing from outside reaches it. A press never folds into an
    alarm the station raised about her silence (`watch_alarms`): an SOS is an alert of its own,
    with her consent to publish; her cancel, with her PIN, does close such an alarm."""
    cls = "trust = 'registered'" if verified else "trust != 'registered'"
    watch = "" if watch_alarms else "AND source NOT IN ('silent', 'checkin')"
    return db.execute(
        f"SELECT id, last_press_at, state FROM incidents WHERE node_num=? AND state != 'resolved' AND cover=0 "
        f"AND {cls} {watch} ORDER BY id DESC LIMIT 1", (num,)).fetchone()


def last_fix(db: sqlite_utils.Database, num: int) -> tuple | None:
    """The newest live fix that proved its sender (a replay from the radio's cache is history, not
    news; a position claiming her number on another channel is not hers)."""
    return db.execute(
        "SELECT lat, lon, received_at, source, precision_bits FROM positions WHERE node_num=? AND cached=0 "
        "AND unverified=0 ORDER BY id DESC LIMIT 1", (num,)).fetchone()


def _legacy_verdict(db: sqlite_utils.Database, num: int) -> trust.Verdict:
    """For alerts raised without a packet (a drill, a test): the registry alone."""
    registered, _ = trust.pinned_key(db, num)
    if registered:
        return trust.Verdict(trust.REGISTERED, trust.Proof(trust.KEY), True)
    return trust.verdict(db, _packet_from(num), False)


def _packet_from(num: int):
    from meshtastic.protobuf import mesh_pb2
    p = mesh_pb2.MeshPacket()
    setattr(p, "from", num)
    return p


def raise_alert(db: sqlite_utils.Database, num: int, alert: Alert, at: float, *, packet_row: int | None,
                fold_window_s: float, drill: bool, fix: Position | None = None,
                verdict: trust.Verdict | None = None) -> Effect:
    v = verdict or _legacy_verdict(db, num)
    verified = v.trust == trust.REGISTERED
    test = press_tests.take(db, num, at) if verified else None
    if test is not None:
        return _press_test(db, test, num, alert, at, packet_row, fix, v.trust)
    current = _open_incident_of(db, num, verified=verified, watch_alarms=False)
    if current is not None and at - current[1] <= fold_window_s:
        db.execute("UPDATE incidents SET press_count = press_count + 1, last_press_at=? WHERE id=?",
                   (at, current[0]))
        log_event(db, current[0], at, "wearer" if verified else "sender", "pressed again", alert.source)
        return Effect("folded", current[0], num, v.trust)
    if fix is not None:
        lat, lon, fix_at, fix_source, bits = fix.lat, fix.lon, at, fix.source, fix.precision_bits
    elif verified or not v.registered:
        # An alert without a fix still carries the last known position, with its age.
        last = last_fix(db, num)
        lat, lon, fix_at, fix_source, bits = last if last else (None, None, None, None, None)
    else:
        lat = lon = fix_at = fix_source = bits = None     # never the wearer's position for a claim
    cur = db.execute(
        """INSERT INTO incidents (node_num, opened_at, last_press_at, press_count, source, state, trust,
               duress, drill, lat, lon, fix_at, fix_source, opening_packet, message, fix_precision_bits, proof,
               trust_reason)
           VALUES (?,?,?,1,?,'open',?,0,?,?,?,?,?,?,?,?,?,?)""",
        (num, at, at, alert.source, v.trust, int(drill), lat, lon, fix_at, fix_source, packet_row,
         alert.text[:200], bits, v.proof.how, v.proof.reason or None))
    iid = cur.lastrowid
    # Pieces that may be absent are wordings of their own, so each is translated whole.
    detail = Wording("{source}; trust {trust}{reason}{proof}{drill}", source=alert.source, trust=v.trust,
                     reason=Wording(" ({reason})", reason=v.proof.reason) if v.proof.reason and v.registered else "",
                     proof=(Wording("; proven by her key") if v.proof.how == trust.KEY else
                            Wording("; proven by the office channel")) if verified else "",
                     drill=Wording("; drill") if drill else "")
    log_event(db, iid, at, "wearer" if verified else "sender", "alert opened", detail)
    return Effect("opened", iid, num, v.trust)


def _press_test(db: sqlite_utils.Database, test: int, num: int, alert: Alert, at: float, packet_row: int | None,
                fix: Position | None, trust_level: str) -> Effect:
    """The press a technician is waiting for: stored as an incident closed at once (no alarm, no
    relay: the relay plans nothing for a resolved incident), marked as a test."""
    lat, lon, bits = (fix.lat, fix.lon, fix.precision_bits) if fix is not None else (None, None, None)
    cur = db.execute(
        """INSERT INTO incidents (node_num, opened_at, last_press_at, press_count, source, state, resolution,
               resolved_at, resolved_by, trust, duress, drill, press_test, lat, lon, fix_at, fix_source,
               opening_packet, message, fix_precision_bits)
           VALUES (?,?,?,1,?,'resolved','drill',?,'press test',?,0,1,1,?,?,?,?,?,?,?)""",
        (num, at, at, alert.source, at, trust_level, lat, lon, at if fix else None,
         fix.source if fix else None, packet_row, alert.text[:200], bits))
    iid = cur.lastrowid
    log_event(db, iid, at, "wearer", "alert opened", Wording("{source}; press test", source=alert.source))
    press_tests.passed(db, test, iid, packet_row, at)
    return Effect("press_test", iid, num, trust_level)


# Wrong PINs per wearer: after MAX_WRONG_PINS within PIN_WINDOW_S, cancels wait PIN_LOCK_S. Only a
# cancel sealed with the wearer's key is checked at all, so this is what someone holding her
# bracelet gets: three tries, then a quarter of an hour.
MAX_WRONG_PINS, PIN_WINDOW_S, PIN_LOCK_S = 3, 900.0, 900.0


@dataclass(frozen=True)
class CancelCheck:
    """A cancel waiting for its PIN to be checked, off the writer (scrypt takes tens of ms)."""
    incident_id: int
    node_num: int
    cancel_hash: str | None
    duress_hash: str | None


def cancel_request(db: sqlite_utils.Database, num: int, at: float) -> CancelCheck | None:
    """An authenticated cancel: what must be checked, or None (and why, in the log) when nothing
    can be: no live alert (which, seen from outside, is also what follows a duress), or PIN entry
    locked after wrong PINs."""
    current = _open_incident_of(db, num, verified=True)
    if current is None:
        log_event(db, None, at, "wearer", "cancel without open alert", Wording("node {node}", node=f"!{num:08x}"))
        return None
    iid = current[0]
    locked = db.execute("SELECT pin_locked_until FROM bracelets WHERE node_num=?", (num,)).fetchone()
    if locked and locked[0] and locked[0] > at:
        log_event(db, iid, at, "wearer", "cancel ignored",
                  Wording("PIN entry locked for {n} s more after {wrong} wrong PINs", n=f"{locked[0] - at:.0f}",
                          wrong=MAX_WRONG_PINS))
        return None
    cancel_hash, duress_hash = registry.pin_hashes(db, num)
    return CancelCheck(iid, num, cancel_hash, duress_hash)


def check_pins(check: CancelCheck, pin: str, pin_key: pins.PinKey | None) -> str:
    """duress, cancel or wrong; both hashes are always computed, so its time tells nothing."""
    is_cancel = pin_key is not None and pin_key.verify(pin, check.cancel_hash)
    is_duress = pin_key is not None and pin_key.verify(pin, check.duress_hash)
    return "duress" if is_duress else "cancel" if is_cancel else "no PIN" if not check.cancel_hash else "wrong"


def apply_cancel(db: sqlite_utils.Database, check: CancelCheck, outcome: str, at: float) -> Effect | None:
    """The checked PIN's consequence. The duress PIN gets what a real cancel gets outside the office
    (the same receipt; from now on the same silence to cancels, the same new alert to a press, the
    same posts); inside, the alert stays open, flagged DURESS, and only a coordinator closes it."""
    iid, num = check.incident_id, check.node_num
    row = db.execute("SELECT state, cover FROM incidents WHERE id=?", (iid,)).fetchone()
    if row is None or row[0] == RESOLVED or row[1]:
        log_event(db, None, at, "wearer", "cancel without open alert", Wording("node {node}", node=f"!{num:08x}"))
        return None
    if outcome in ("duress", "cancel"):
        db.execute("UPDATE bracelets SET pin_failures=0, pin_locked_until=NULL WHERE node_num=?", (num,))
    if outcome == "duress":
        db.execute("UPDATE incidents SET duress=1, cover=1, state='open', acknowledged_at=NULL, "
                   "acknowledged_by=NULL WHERE id=?", (iid,))
        log_event(db, iid, at, "wearer", "DURESS", Wording("cancel sent with the duress PIN: escalated; outside the "
                                                           "office it looks cancelled"))
        return Effect("duress", iid, num, trust.REGISTERED)
    if outcome == "cancel":
        db.execute("UPDATE incidents SET state='resolved', resolution='safe', resolved_at=?, resolved_by='wearer' "
                   "WHERE id=?", (at, iid))
        log_event(db, iid, at, "wearer", "resolved", Wording("safe (cancel with PIN)"))
        return Effect("cancelled", iid, num, trust.REGISTERED)
    if outcome == "no PIN":
        log_event(db, iid, at, "wearer", "cancel rejected", Wording("no PIN is registered for this bracelet"))
        return Effect("cancel_rejected", iid, num, trust.REGISTERED)
    failures, last = db.execute("SELECT pin_failures, pin_failed_at FROM bracelets WHERE node_num=?",
                                (num,)).fetchone()
    failures = 1 if not last or at - last > PIN_WINDOW_S else (failures or 0) + 1
    locked = failures >= MAX_WRONG_PINS
    db.execute("UPDATE bracelets SET pin_failures=?, pin_failed_at=?, pin_locked_until=? WHERE node_num=?",
               (0 if locked else failures, at, at + PIN_LOCK_S if locked else None, num))
    log_event(db, iid, at, "wearer", "cancel rejected",
              Wording("wrong PIN ({n} of {limit})", n=failures, limit=MAX_WRONG_PINS))
    if locked:
        log_event(db, iid, at, "station", "PIN entry locked",
                  Wording("{n} wrong PINs: cancels from {node} are ignored for {minutes} min", n=MAX_WRONG_PINS,
                          node=f"!{num:08x}", minutes=f"{PIN_LOCK_S / 60:.0f}"))
    return Effect("cancel_rejected", iid, num, trust.REGISTERED)


def follow_position(db: sqlite_utils.Database, num: int, pos: Position, at: float, *, verified: bool = True) -> None:
    """Keep the open incident's position current as the wearer moves, with its precision: only
    incidents of the same trust class (a claim never moves her verified alert)."""
    cls = "trust = 'registered'" if verified else "trust != 'registered'"
    db.execute("UPDATE incidents SET lat=?, lon=?, fix_at=?, fix_source=?, fix_precision_bits=? "
               f"WHERE node_num=? AND state != 'resolved' AND {cls}",
               (pos.lat, pos.lon, at, pos.source, pos.precision_bits, num))


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


def resolve(db: sqlite_utils.Database, iid: int, resolution: str, actor: str, at: float,
            reason: str | None = None) -> Effect:
    if resolution not in RESOLUTIONS:
        raise IncidentError("resolution must be one of {choices}", choices=", ".join(RESOLUTIONS))
    row = db.execute("SELECT state, duress FROM incidents WHERE id=?", (iid,)).fetchone()
    if row is None:
        raise IncidentError("there is no alert {iid}", iid=iid)
    if row[0] == RESOLVED:
        raise IncidentError("alert {iid} is already resolved", iid=iid)
    reason = (reason or "").strip()
    if row[1] and not reason:
        # A duress was sent under threat: closing it is a decision someone must explain.
        raise IncidentError("alert {iid} is a DURESS: give the reason it is closed", iid=iid)
    if len(reason) > 2000:
        raise IncidentError("a reason is at most 2000 characters")
    db.execute("UPDATE incidents SET state='resolved', resolution=?, resolved_at=?, resolved_by=?, "
               "drill = CASE WHEN ?='drill' THEN 1 ELSE drill END WHERE id=?",
               (resolution, at, actor, resolution, iid))
    log_event(db, iid, at, actor, "resolved",
              Wording("{resolution}: {reason}", resolution=resolution, reason=reason) if reason else resolution)
    return Effect("resolved", iid)


def add_note(db: sqlite_utils.Database, iid: int, text: str, actor: str, at: float) -> Effect:
    text = text.strip()
    if not text or len(text) > 2000:
        raise IncidentError("a note is 1 to 2000 characters")
    if db.execute("SELECT 1 FROM incidents WHERE id=?", (iid,)).fetchone() is None:
        raise IncidentError("there is no alert {iid}", iid=iid)
    log_event(db, iid, at, actor, "note", text)
    return Effect("noted", iid)
