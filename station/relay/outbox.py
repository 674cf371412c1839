"""The durable outbox: one row per (incident, destination, kind), and the rules that move it.

States: held (waiting for verification, consent or budget), ready, sending, sent, failed
(permanent, with the platform's reason), uncertain (the request left and no answer came),
cancelled. Every transition is committed, and written to the incident's event log, before the
network call it leads to. All functions here run inside a writer transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

import sqlite_utils

from station import incidents as inc
from station.errors import Refusal
from station.logs import event
from station.relay.compose import NO_CONSENT, ComposeError, Consent, Templates, compose
from station.relay.settings import Destination, Place
from station.wording import Wording

log = logging.getLogger(__name__)

HELD, READY, SENDING, SENT, FAILED, UNCERTAIN, CANCELLED = (
    "held", "ready", "sending", "sent", "failed", "uncertain", "cancelled")
STATES = (HELD, READY, SENDING, SENT, FAILED, UNCERTAIN, CANCELLED)
# SOS alerts before follow-ups before drills; oldest first within a class.
PRIORITY_ALERT, PRIORITY_FOLLOW_UP, PRIORITY_DRILL = 0, 1, 2


@dataclass
class Plan:
    """What planning needs to know, apart from the database."""
    destinations: list[Destination]
    templates: Templates
    time_zone: str = "UTC"
    places: tuple[Place, ...] = ()
    radius_km: float = 30.0
    update_every_s: float = 1800.0

    def by_name(self, name: str) -> Destination | None:
        return next((d for d in self.destinations if d.name == name), None)


def _rows(db, sql: str, params: tuple = ()) -> list[dict]:
    cur = db.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _moved(dest: str, kind: str, state: str) -> Wording:
    """The event each outbox state change writes, in the words the console translates."""
    return Wording("outbox {dest} {kind}: {state}", dest=dest, kind=kind, state=state)


def transition(db: sqlite_utils.Database, row_id: int, allowed: tuple[str, ...], to: str, at: float,
               actor: str = "relay", reason: str | None = None, **fields) -> bool:
    """Move a row from one of `allowed` to `to`; False (and nothing written) if it was not there."""
    sets = ", ".join(f"{k}=?" for k in fields)
    params = [to, reason, at, *fields.values(), row_id, *allowed]
    cur = db.execute(f"UPDATE outbox SET state=?, reason=?, updated_at=?{', ' + sets if sets else ''} "
                     f"WHERE id=? AND state IN ({','.join('?' * len(allowed))})", params)
    if cur.rowcount != 1:
        return False
    row = db.execute("SELECT incident_id, destination, kind FROM outbox WHERE id=?", (row_id,)).fetchone()
    inc.log_event(db, row[0], at, actor, _moved(row[1], row[2], to), reason or "")
    if to in (SENT, FAILED, UNCERTAIN):
        event(log, f"relay.{to}", logging.WARNING if to != SENT else logging.INFO, reason or "",
              incident=row[0], destination=row[1], kind=row[2], row=row_id)
    return True


def consent_of(db: sqlite_utils.Database, node_num: int) -> Consent | None:
    rows = _rows(db, "SELECT * FROM bracelets WHERE node_num=?", (node_num,))
    return Consent.from_row(rows[0]) if rows else None


def eligible(incident: dict, consent: Consent | None, dest: Destination) -> str | None:
    """None if the incident may go to `dest`; else why not (a safety rule, not an error)."""
    if not dest.enabled:
        return "destination disabled"
    if incident["drill"]:
        return None if dest.kind == "drill" else "drills never leave the drill destination"
    if dest.kind == "drill":
        return "real alerts never go to the drill destination"
    if incident["trust"] in ("unverified", "impostor"):
        # Someone else's word for a wearer, or a look-alike: to nobody, not even partners.
        return f"{incident['trust']} sender: never published"
    if incident["trust"] != "registered" and dest.public:
        return f"{incident['trust']} sender: never published publicly"
    if consent is None or consent.publish == "never":
        return "the wearer has not consented to publication"
    return None


def _held_reason(consent: Consent) -> str:
    if consent.publish_after_min is not None:
        return (f"publishes {consent.publish_after_min:g} min after the alert unless withheld, "
                f"or after {consent.approvals} approval(s)")
    return f"waiting for {consent.approvals} coordinator approval(s)"


def _insert(db, incident_id: int, dest: str, kind: str, seq: int, priority: int, state: str, reason: str | None,
            text: str, has_link: bool, at: float, reply_to: str | None = None) -> int | None:
    cur = db.execute(
        "INSERT OR IGNORE INTO outbox (incident_id, destination, kind, seq, priority, state, reason, text, has_link, "
        "idempotency_key, reply_to, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (incident_id, dest, kind, seq, priority, state, reason, text, int(has_link), uuid.uuid4().hex, reply_to,
         at, at))
    if cur.rowcount != 1:
        return None
    inc.log_event(db, incident_id, at, "relay", _moved(dest, kind, state), reason or "")
    return cur.lastrowid


def _compose(plan: Plan, template: str, incident: dict, consent: Consent, dest: Destination):
    return compose(template, incident, consent, dest, templates=plan.templates, time_zone=plan.time_zone,
                   places=list(plan.places), radius_km=plan.radius_km)


def plan_new(db: sqlite_utils.Database, plan: Plan, at: float) -> int:
    """Create alert rows for incidents not yet planned."""
    made = 0
    # Resolved before the relay saw it: nothing was planned, so nothing will need a follow-up.
    # (INDEXED BY: without statistics SQLite would pick the state index and walk all history.)
    # A duress covered as a cancel is resolved as far as anyone outside can tell (incidents.py).
    db.execute("UPDATE incidents INDEXED BY incidents_relay_unplanned SET relay_planned=1, relay_followed_up=1 "
               "WHERE relay_planned=0 AND (state='resolved' OR cover=1)")
    for incident in _rows(db, "SELECT * FROM incidents INDEXED BY incidents_relay_unplanned WHERE relay_planned=0 "
                              "AND state IN ('open', 'acknowledged') AND cover=0 AND withheld=0 ORDER BY id"):
        consent = consent_of(db, incident["node_num"])
        for dest in plan.destinations:
            if eligible(incident, consent, dest) is not None:
                continue
            earlier = db.execute("SELECT COUNT(*), SUM(state NOT IN ('cancelled','failed')) FROM outbox "
                                 "WHERE incident_id=? AND destination=? AND kind='alert'",
                                 (incident["id"], dest.name)).fetchone()
            if earlier[1]:
                continue   # one live alert row per destination; a withheld-then-approved alert gets a new one
            seq = earlier[0]
            c = consent or NO_CONSENT
            at_once = incident["drill"] or c.publish == "at-once"
            try:
                post = _compose(plan, "alert", incident, c, dest)
            except ComposeError as e:
                _insert(db, incident["id"], dest.name, "alert", seq, PRIORITY_ALERT, FAILED, str(e), "", False, at)
                continue
            priority = PRIORITY_DRILL if incident["drill"] else PRIORITY_ALERT
            made += bool(_insert(db, incident["id"], dest.name, "alert", seq, priority, READY if at_once else HELD,
                                 None if at_once else _held_reason(c), post.text, post.has_link, at))
        db.execute("UPDATE incidents SET relay_planned=1 WHERE id=?", (incident["id"],))
    return made


def promote_held(db: sqlite_utils.Database, plan: Plan, at: float) -> int:
    """Held alerts become ready when their verification is met; withheld ones are cancelled."""
    moved = 0
    for row in _rows(db, """
            SELECT o.id AS row_id, o.destination, i.id, i.node_num, i.opened_at, i.lat, i.lon, i.drill, i.withheld,
                   CASE WHEN i.cover THEN 'resolved' ELSE i.state END AS state,
                   (SELECT COUNT(*) FROM approvals a WHERE a.incident_id=i.id) AS n_approvals
            FROM outbox o JOIN incidents i ON i.id=o.incident_id
            WHERE o.state='held' AND o.kind='alert' AND (o.reason IS NULL OR o.reason NOT LIKE 'budget%')"""):
        consent = consent_of(db, row["node_num"]) or NO_CONSENT
        if row["withheld"] or row["state"] == "resolved":
            continue   # handled by withhold() and follow_up()
        why = None
        if row["n_approvals"] >= consent.approvals:
            why = f"approved by {row['n_approvals']} coordinator(s)"
        elif consent.publish_after_min is not None and at >= row["opened_at"] + consent.publish_after_min * 60:
            why = f"nobody withheld it within {consent.publish_after_min:g} min"
        if why is None:
            continue
        dest = plan.by_name(row["destination"])
        if dest is None:
            transition(db, row["row_id"], (HELD,), CANCELLED, at, reason="destination no longer configured")
            continue
        # Composed again: the position may have moved since the alert opened.
        incident = {k: row[k] for k in ("id", "opened_at", "lat", "lon", "drill")}
        try:
            post = _compose(plan, "alert", incident, consent, dest)
        except ComposeError as e:
            transition(db, row["row_id"], (HELD,), FAILED, at, reason=str(e))
            continue
        moved += transition(db, row["row_id"], (HELD,), READY, at, reason=why, text=post.text,
                            has_link=int(post.has_link))
    return moved


def follow_up(db: sqlite_utils.Database, plan: Plan, at: float) -> int:
    """After resolution: cancel what was not published, reply to (or delete) what was."""
    made = 0
    # A covered duress follows up as the cancel it looks like: "safe", with nothing else to tell it
    # apart (the post, its time, the silence after it).
    for incident in _rows(db, "SELECT *, CASE WHEN cover THEN 'safe' ELSE resolution END AS resolution "
                              "FROM incidents INDEXED BY incidents_relay_live WHERE (state='resolved' OR cover=1) "
                              "AND relay_followed_up=0 AND relay_planned=1"):
        consent = consent_of(db, incident["node_num"]) or NO_CONSENT
        for row in _rows(db, "SELECT * FROM outbox WHERE incident_id=? AND kind='alert'", (incident["id"],)):
            dest = plan.by_name(row["destination"])
            if row["state"] in (HELD, READY):
                transition(db, row["id"], (HELD, READY), CANCELLED, at, reason="resolved before publication")
                continue
            if row["state"] not in (SENT, UNCERTAIN) or dest is None:
                continue
            delete = incident["resolution"] == "false_alarm" and dest.false_alarm == "delete"
            template = f"resolution_{'safe' if incident['resolution'] != 'false_alarm' else 'false_alarm'}"
            text, link = ("", False)
            if not delete:
                try:
                    post = _compose(plan, template, incident, consent, dest)
                    text, link = post.text, post.has_link
                except ComposeError as e:
                    text = ""
                    _insert(db, incident["id"], dest.name, "resolution", 0, PRIORITY_FOLLOW_UP, FAILED, str(e),
                            "", False, at)
                    continue
            state, reason = (READY, None) if row["state"] == SENT else (
                HELD, "waiting for the alert post to be confirmed")
            made += bool(_insert(db, incident["id"], dest.name, "retraction" if delete else "resolution", 0,
                                 PRIORITY_FOLLOW_UP, state, reason, text, link, at, reply_to=row["remote_id"]))
        db.execute("UPDATE incidents SET relay_followed_up=1 WHERE id=?", (incident["id"],))
    # Follow-ups that waited for an unconfirmed alert.
    for row in _rows(db, """SELECT f.id, a.state AS alert_state, a.remote_id FROM outbox f JOIN outbox a
            ON a.incident_id=f.incident_id AND a.destination=f.destination AND a.kind='alert'
               AND a.seq=(SELECT MAX(seq) FROM outbox x WHERE x.incident_id=f.incident_id
                          AND x.destination=f.destination AND x.kind='alert')
            WHERE f.state='held' AND f.kind IN ('resolution','retraction')"""):
        if row["alert_state"] == SENT:
            transition(db, row["id"], (HELD,), READY, at, reason="alert post confirmed", reply_to=row["remote_id"])
        elif row["alert_state"] in (FAILED, CANCELLED):
            transition(db, row["id"], (HELD,), CANCELLED, at, reason="the alert was never posted")
    return made


def plan_updates(db: sqlite_utils.Database, plan: Plan, at: float) -> int:
    """A new position of a published, still open incident, as a reply in its thread: only if the
    wearer consented to position updates, and at most every `update_every_s` a destination.
    (CROSS JOIN keeps the live incidents as the outer loop, not every alert ever sent.)"""
    made = 0
    for row in _rows(db, """
            SELECT a.destination, a.remote_id, a.sent_at, i.id, i.node_num, i.opened_at, i.lat, i.lon, i.fix_at,
                   i.fix_precision_bits, i.drill,
                   (SELECT MAX(u.created_at) FROM outbox u WHERE u.incident_id=i.id AND u.destination=a.destination
                    AND u.kind='update') AS last_update,
                   (SELECT COUNT(*) FROM outbox u WHERE u.incident_id=i.id AND u.destination=a.destination
                    AND u.kind='update') AS n_updates
            FROM incidents i INDEXED BY incidents_relay_live
            CROSS JOIN outbox a ON a.incident_id=i.id AND a.kind='alert' AND a.state='sent'
            JOIN bracelets b ON b.node_num=i.node_num AND b.position_updates=1
            WHERE i.relay_followed_up=0 AND i.relay_planned=1 AND i.state IN ('open', 'acknowledged')
              AND i.cover=0 AND i.withheld=0
              AND i.fix_at > a.sent_at"""):
        since = row["last_update"] or row["sent_at"]
        if at - since < plan.update_every_s or (row["last_update"] and row["fix_at"] <= row["last_update"]):
            continue
        dest = plan.by_name(row["destination"])
        consent = consent_of(db, row["node_num"]) or NO_CONSENT
        if dest is None:
            continue
        try:
            # The update's time is the fix's, not the alert's.
            post = _compose(plan, "update", dict(row, opened_at=row["fix_at"]), consent, dest)
        except ComposeError:
            continue
        made += bool(_insert(db, row["id"], dest.name, "update", row["n_updates"] + 1, PRIORITY_FOLLOW_UP, READY,
                             None, post.text, post.has_link, at, reply_to=row["remote_id"]))
    return made


def sweep(db: sqlite_utils.Database, plan: Plan, at: float) -> int:
    return plan_new(db, plan, at) + promote_held(db, plan, at) + follow_up(db, plan, at) + plan_updates(db, plan, at)


def recover_after_restart(db: sqlite_utils.Database, plan: Plan, at: float, idempotent: dict[str, float]) -> int:
    """Rows caught in `sending` by a crash may have been posted. They become uncertain; where the
    platform deduplicates by idempotency key within a window, they are re-sent with the same key."""
    n = 0
    for row in _rows(db, "SELECT id, destination, first_attempt_at FROM outbox WHERE state='sending'"):
        window = idempotent.get(row["destination"])
        if window is not None and at - (row["first_attempt_at"] or at) < window:
            n += transition(db, row["id"], (SENDING,), READY, at,
                            reason="station stopped during the request; re-sent with the same idempotency key")
        else:
            n += transition(db, row["id"], (SENDING,), UNCERTAIN, at,
                            reason="station stopped during the request: it may have been posted")
    return n


# -- limits -------------------------------------------------------------------------------------
def _day_start(at: float) -> float:
    d = dt.datetime.fromtimestamp(at, dt.timezone.utc)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp()


def _month_start(at: float) -> float:
    d = dt.datetime.fromtimestamp(at, dt.timezone.utc)
    return dt.datetime(d.year, d.month, 1, tzinfo=dt.timezone.utc).timestamp()


def spent(db: sqlite_utils.Database, dest: str, at: float) -> float:
    return db.execute("SELECT COALESCE(SUM(cost), 0) FROM outbox WHERE destination=? AND state IN ('sent','uncertain') "
                      "AND sent_at >= ?", (dest, _month_start(at))).fetchone()[0]


def limit_check(db: sqlite_utils.Database, dest: Destination, row: dict, at: float) -> tuple[str, float | None] | None:
    """None if the row may be sent now; else ('later', when) or ('held', None) with the reason."""
    if dest.daily_cap is not None:
        today = db.execute("SELECT COUNT(*) FROM outbox WHERE destination=? AND sent_at >= ? AND state IN "
                           "('sent','uncertain','sending')", (dest.name, _day_start(at))).fetchone()[0]
        if today >= dest.daily_cap:
            return (f"daily cap of {dest.daily_cap} posts reached", _day_start(at) + 86400)
    if dest.rate_per_hour:
        last = db.execute("SELECT MAX(sent_at) FROM outbox WHERE destination=? AND state IN ('sent','uncertain')",
                          (dest.name,)).fetchone()[0]
        gap = 3600.0 / dest.rate_per_hour
        if last is not None and at - last < gap:
            return (f"rate limit of {dest.rate_per_hour:g} posts an hour", last + gap)
    if dest.budget is not None and row["kind"] != "retraction":
        cost = dest.cost_per_link_post if row["has_link"] else dest.cost_per_post
        used = spent(db, dest.name, at)
        if used + cost > dest.budget + 1e-9:
            return (f"budget: {used:.2f} of {dest.budget:.2f} used this month, this post costs {cost:.3f}", None)
    return None


def blocked_destinations(db: sqlite_utils.Database, at: float) -> dict[str, float]:
    return dict(db.execute("SELECT destination, blocked_until FROM destination_limits WHERE blocked_until > ?",
                           (at,)).fetchall())


def block(db: sqlite_utils.Database, dest: str, until: float, reason: str, at: float) -> None:
    db.execute("INSERT INTO destination_limits (destination, blocked_until, reason, updated_at) VALUES (?,?,?,?) "
               "ON CONFLICT(destination) DO UPDATE SET blocked_until=excluded.blocked_until, reason=excluded.reason, "
               "updated_at=excluded.updated_at", (dest, until, reason, at))


def next_ready(db: sqlite_utils.Database, at: float, skip: set[str]) -> dict | None:
    marks = ",".join("?" * len(skip))
    rows = _rows(db, f"""SELECT * FROM outbox WHERE state='ready' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
                         {f'AND destination NOT IN ({marks})' if skip else ''}
                         ORDER BY priority, created_at, id LIMIT 1""", (at, *skip))
    return rows[0] if rows else None


def next_wake(db: sqlite_utils.Database, at: float) -> float | None:
    return db.execute("SELECT MIN(next_attempt_at) FROM outbox WHERE state='ready' AND next_attempt_at > ?",
                      (at,)).fetchone()[0]


# -- coordinator actions ------------------------------------------------------------------------
class OutboxError(Refusal):
    pass


def _row(db, row_id: int) -> dict:
    rows = _rows(db, "SELECT * FROM outbox WHERE id=?", (row_id,))
    if not rows:
        raise OutboxError("there is no outbox row {row}", row=row_id)
    return rows[0]


def retry(db: sqlite_utils.Database, row_id: int, actor: str, at: float) -> None:
    row = _row(db, row_id)
    if row["state"] not in (FAILED, UNCERTAIN, HELD):
        raise OutboxError("row {row} is {state}: only failed, uncertain or held rows are retried", row=row_id,
                          state=row["state"])
    if row["state"] == HELD and not (row["reason"] or "").startswith("budget"):
        raise OutboxError("row {row} is held for verification: approve the alert instead", row=row_id)
    note = "re-send decided by a coordinator" + (" (it may already have been posted)" if row["state"] == UNCERTAIN
                                                 else "")
    transition(db, row_id, (row["state"],), READY, at, actor, note, attempts=0, next_attempt_at=None)


def cancel(db: sqlite_utils.Database, row_id: int, actor: str, at: float) -> None:
    row = _row(db, row_id)
    if row["state"] not in (HELD, READY, FAILED, UNCERTAIN):
        raise OutboxError("row {row} is {state} and cannot be cancelled", row=row_id, state=row["state"])
    transition(db, row_id, (row["state"],), CANCELLED, at, actor, "cancelled by a coordinator")


def confirm(db: sqlite_utils.Database, row_id: int, actor: str, at: float, remote_id: str | None = None,
            url: str | None = None, posted: bool = True) -> None:
    """A coordinator checked the platform: the uncertain post is there (or is not)."""
    row = _row(db, row_id)
    if row["state"] != UNCERTAIN:
        raise OutboxError("row {row} is {state}, not uncertain", row=row_id, state=row["state"])
    if posted:
        transition(db, row_id, (UNCERTAIN,), SENT, at, actor, "confirmed posted by a coordinator",
                   remote_id=remote_id or row["remote_id"], url=url or row["url"], sent_at=row["sent_at"] or at)
    else:
        transition(db, row_id, (UNCERTAIN,), FAILED, at, actor, "confirmed not posted by a coordinator")


def approve(db: sqlite_utils.Database, incident_id: int, actor: str, at: float) -> int:
    if not db.execute("SELECT 1 FROM incidents WHERE id=?", (incident_id,)).fetchone():
        raise OutboxError("there is no alert {iid}", iid=incident_id)
    db.execute("INSERT OR IGNORE INTO approvals (incident_id, actor, at) VALUES (?,?,?)", (incident_id, actor, at))
    # Approval after a withhold plans the publication again (plan_new skips live rows).
    db.execute("UPDATE incidents SET withheld=0, relay_planned=0 WHERE id=? AND withheld=1", (incident_id,))
    inc.log_event(db, incident_id, at, actor, "publication approved")
    return db.execute("SELECT COUNT(*) FROM approvals WHERE incident_id=?", (incident_id,)).fetchone()[0]


def withhold(db: sqlite_utils.Database, incident_id: int, actor: str, at: float) -> int:
    if not db.execute("SELECT 1 FROM incidents WHERE id=?", (incident_id,)).fetchone():
        raise OutboxError("there is no alert {iid}", iid=incident_id)
    db.execute("UPDATE incidents SET withheld=1 WHERE id=?", (incident_id,))
    inc.log_event(db, incident_id, at, actor, "publication withheld")
    n = 0
    for row in _rows(db, "SELECT id, state FROM outbox WHERE incident_id=? AND kind='alert' AND state IN ('held','ready')",
                     (incident_id,)):
        n += transition(db, row["id"], (row["state"],), CANCELLED, at, actor, "withheld by a coordinator")
    return n

