"""An alert's escalation chain, kept in the database (`escalations`, `notifications`).

Everything here runs in writer transactions and reads its facts from the database, never from
the daemon's memory: an alert acknowledged from the console (another process), a duress that
arrived while the daemon was down, a chain half-way through when the power went: each is seen
at the next tick. A step is fired in one transaction that writes its notifications and moves
the chain on, so a crash before the commit fires it again after the restart and a crash after
it never fires it twice. Steps are timed from the previous step's due time (not from when the
tick ran), so a station that was off for an hour fires the steps that fell due meanwhile at once.
"""

from __future__ import annotations

import re
import secrets

import sqlite_utils

from station import incidents
from station.escalation import texts
from station.escalation.channels import mesh
from station.escalation.policy import Policy, Responder
from station.incidents import log_event
from station.wording import Wording

RUNNING, STOPPED, EXHAUSTED = "running", "stopped", "exhausted"
ALERT, DURESS = "alert", "duress"
STAND_DOWN_STEP = -1           # the "stand down" sent to everyone notified, once the chain stops
DURESS_CONTACTS_STEP = -2      # the wearer's trusted contacts, told of a duress at once
REF_LETTERS = "ACDEFHJKMNPRTUVWXY"      # no letter that reads as a digit (O, I, L, B, S, Z, G, Q)
REPEAT_LAST_S = 900.0          # the last step is repeated this often until someone answers
# Incidents that call for people: verified, not a drill or a press test (a drill exercises the
# room, never wakes a responder), still open. Alerts that prove nothing are the office's to judge.
CALLS = "i.state = 'open' AND i.trust = 'registered' AND i.drill = 0 AND i.press_test = 0"


def _new_ref(db: sqlite_utils.Database, iid: int) -> str:
    """What a responder types after ACK: the alert's number and two letters, so that a mistyped
    number does not acknowledge someone else's alert."""
    while True:
        ref = f"{iid}{''.join(secrets.choice(REF_LETTERS) for _ in range(2))}"
        if not db.execute("SELECT 1 FROM escalations WHERE ref=?", (ref,)).fetchone():
            return ref


def pending(db: sqlite_utils.Database, now: float) -> bool:
    """Whether a tick has anything to do (read on a reader connection, so that an idle station
    does not commit, and write the SD card, twice a second)."""
    return db.execute(
        f"""SELECT EXISTS(SELECT 1 FROM incidents i WHERE {CALLS}
                          AND NOT EXISTS(SELECT 1 FROM escalations e WHERE e.incident_id = i.id))
            OR EXISTS(SELECT 1 FROM escalations e WHERE e.state = 'running' AND e.next_at <= ?)
            OR EXISTS(SELECT 1 FROM escalations e JOIN incidents i ON i.id = e.incident_id
                      WHERE e.state = 'running' AND (i.state != 'open' OR (i.duress = 1 AND e.kind != 'duress')))
            OR EXISTS(SELECT 1 FROM escalations e JOIN incidents i ON i.id = e.incident_id
                      WHERE e.kind != 'duress' AND i.duress = 1 AND i.state = 'open')""",
        (now,)).fetchone()[0] == 1


def tick(db: sqlite_utils.Database, now: float, policy: Policy) -> list[int]:
    """Start, switch, stop and fire what is due. The notifications it queued, by id."""
    queued: list[int] = []
    for (iid, opened) in db.execute(
            f"SELECT i.id, i.opened_at FROM incidents i WHERE {CALLS} "
            "AND NOT EXISTS(SELECT 1 FROM escalations e WHERE e.incident_id = i.id)").fetchall():
        _start(db, iid, opened, now, policy)
    for (iid,) in db.execute("SELECT e.incident_id FROM escalations e JOIN incidents i ON i.id = e.incident_id "
                             "WHERE e.kind != 'duress' AND i.duress = 1 AND i.state = 'open'").fetchall():
        queued += _duress(db, iid, now, policy)
    for iid, state, by in db.execute(
            "SELECT i.id, i.state, COALESCE(i.acknowledged_by, i.resolved_by) FROM escalations e "
            "JOIN incidents i ON i.id = e.incident_id WHERE e.state = 'running' AND i.state != 'open'").fetchall():
        queued += stop(db, iid, now, state, by, policy.time_zone)
    for iid, step, due in db.execute("SELECT incident_id, next_step, next_at FROM escalations "
                                     "WHERE state = 'running' AND next_at <= ? ORDER BY next_at", (now,)).fetchall():
        queued += _fire(db, iid, step, due, now, policy)
    return queued


def _start(db: sqlite_utils.Database, iid: int, opened: float, now: float, policy: Policy) -> None:
    first = policy.steps[0].after_s
    db.execute("INSERT INTO escalations (incident_id, kind, ref, started_at, next_step, next_at, state) "
               "VALUES (?,?,?,?,0,?,'running')", (iid, ALERT, _new_ref(db, iid), now, opened + first))
    log_event(db, iid, now, "station", "escalation started",
              Wording("{n} steps; the first in {s} s unless the alert is acknowledged", n=len(policy.steps),
                      s=f"{max(0.0, opened + first - now):.0f}"))


def _duress(db: sqlite_utils.Database, iid: int, now: float, policy: Policy) -> list[int]:
    """A duress: the chain (re)starts now, from where it stood, and her trusted contacts are told at
    once on every channel they have. Nothing of it reaches the bracelet or a public destination."""
    row = db.execute("SELECT next_step FROM escalations WHERE incident_id=?", (iid,)).fetchone()
    step = row[0] if row else 0
    if row is None:
        db.execute("INSERT INTO escalations (incident_id, kind, ref, started_at, next_step, next_at, state) "
                   "VALUES (?,?,?,?,?,?,'running')", (iid, DURESS, _new_ref(db, iid), now, step, now))
    else:
        db.execute("UPDATE escalations SET kind='duress', state='running', next_at=?, stopped_at=NULL, "
                   "stopped_why=NULL WHERE incident_id=?", (now, iid))
    num = db.execute("SELECT node_num FROM incidents WHERE id=?", (iid,)).fetchone()[0]
    contacts = policy.contacts_of(num)
    queued = _notify(db, iid, DURESS_CONTACTS_STEP, contacts, None, now, policy)
    log_event(db, iid, now, "station", "escalation duress",
              Wording("duress: the chain goes on from step {step} now; {n} trusted contacts told", step=step + 1,
                      n=len(contacts)))
    return queued


def _fire(db: sqlite_utils.Database, iid: int, step: int, due: float, now: float, policy: Policy) -> list[int]:
    spec = policy.steps[min(step, len(policy.steps) - 1)]
    people = policy.who_at(spec, now)
    queued = _notify(db, iid, step, people, spec.channels, now, policy)
    last = step + 1 >= len(policy.steps)
    wait = REPEAT_LAST_S if last else policy.steps[step + 1].after_s
    db.execute("UPDATE escalations SET next_step=?, next_at=? WHERE incident_id=?", (step + 1, due + wait, iid))
    log_event(db, iid, now, "station", "escalation step",
              Wording("step {step}: {who} by {channels}; {n} messages queued{again}", step=step + 1,
                      who=", ".join(r.name for r in people) or "-", channels=", ".join(spec.channels), n=len(queued),
                      again=Wording("; repeated every {s} s until someone answers", s=f"{wait:.0f}") if last else ""))
    return queued


def _notify(db: sqlite_utils.Database, iid: int, step: int, people: list[Responder], channels, now: float,
            policy: Policy) -> list[int]:
    """Queue one notification per responder and channel (every channel she has when `channels` is
    None). A mesh message goes through the receipts queue, which paces texts as the firmware needs."""
    facts = texts.facts(db, iid)
    queued = []
    for r in people:
        for channel in channels or [c for c in ("mesh", "sms", "email", "ntfy", "telegram") if r.address(c)]:
            address = r.address(channel)
            if address is None:
                continue
            text = texts.compose(facts, channel, step, policy.ack_word, policy.time_zone)
            cur = db.execute(
                "INSERT OR IGNORE INTO notifications (incident_id, step, responder, channel, address, text, state, "
                "created_at, updated_at) VALUES (?,?,?,?,?,?,'queued',?,?)",
                (iid, step, r.name, channel, address, text, now, now))
            if not cur.rowcount:
                continue
            if channel == "mesh":
                mesh.queue(db, cur.lastrowid, iid, address, text, now)
            queued.append(cur.lastrowid)
    return queued


def stop(db: sqlite_utils.Database, iid: int, now: float, state: str, by: str | None,
         zone: str = "UTC") -> list[int]:
    """The alert was answered (acknowledged or resolved, from any channel): nothing more is sent
    but a "stand down" to each responder told so far, on the channels she was told on."""
    if db.execute("UPDATE escalations SET state='stopped', stopped_at=?, stopped_why=? WHERE incident_id=? "
                  "AND state != 'stopped'", (now, f"{state} by {by or '?'}", iid)).rowcount == 0:
        return []
    db.execute("UPDATE receipts SET state='skipped', reason='the alert was answered', updated_at=? "
               "WHERE incident_id=? AND kind='escalation' AND state='queued'", (now, iid))
    sync_mesh(db, now, iid)
    cancelled = db.execute("UPDATE notifications SET state='cancelled', reason='the alert was answered', "
                           "updated_at=? WHERE incident_id=? AND state='queued'", (now, iid)).rowcount
    # Claimed ones ("sending") may have left: better a stand-down too many than a responder driving out.
    told = db.execute("SELECT DISTINCT responder, channel, address FROM notifications WHERE incident_id=? AND step >= 0 "
                      "AND state IN ('sent', 'delivered', 'sending')", (iid,)).fetchall()
    facts = texts.facts(db, iid)
    queued = []
    for name, channel, address in told:
        text = texts.stand_down(facts, state, by, zone)
        cur = db.execute("INSERT OR IGNORE INTO notifications (incident_id, step, responder, channel, address, text, "
                         "state, created_at, updated_at) VALUES (?,?,?,?,?,?,'queued',?,?)",
                         (iid, STAND_DOWN_STEP, name, channel, address, text, now, now))
        if cur.rowcount:
            if channel == "mesh":
                mesh.queue(db, cur.lastrowid, iid, address, text, now)
            queued.append(cur.lastrowid)
    log_event(db, iid, now, "station", "escalation stopped",
              Wording("{state} by {by}: {cancelled} messages not sent; {told} told to stand down", state=state,
                      by=by or "?", cancelled=cancelled, told=len(queued)))
    return queued


def sync_mesh(db: sqlite_utils.Database, now: float, iid: int | None = None) -> int:
    """Mesh notifications take their delivery state from their receipt row (the receipts sender
    sends them and hears the responder's node acknowledge). How many changed."""
    where = "AND n.incident_id = ?" if iid is not None else ""
    return db.execute(
        f"""UPDATE notifications AS n SET
              state = CASE r.state WHEN 'delivered' THEN 'delivered' WHEN 'sent' THEN 'sent' WHEN 'relayed' THEN 'sent'
                      WHEN 'failed' THEN 'failed' WHEN 'expired' THEN 'failed' WHEN 'skipped' THEN 'cancelled'
                      ELSE n.state END,
              reason = COALESCE(r.reason, n.reason), sent_at = COALESCE(r.sent_at, n.sent_at),
              attempts = r.attempts, external_id = COALESCE(CAST(r.packet_id AS TEXT), n.external_id), updated_at = ?
            FROM receipts AS r WHERE r.id = n.receipt_id AND n.channel = 'mesh' AND n.state IN ('sending', 'sent')
              AND n.state != CASE r.state WHEN 'delivered' THEN 'delivered' WHEN 'sent' THEN 'sent'
                      WHEN 'relayed' THEN 'sent' WHEN 'failed' THEN 'failed' WHEN 'expired' THEN 'failed'
                      WHEN 'skipped' THEN 'cancelled' ELSE n.state END {where}""",
        (now, *(() if iid is None else (iid,)))).rowcount


def _newest_told(db: sqlite_utils.Database, name: str, *, running: bool = False) -> int | None:
    only = "AND e.state = 'running'" if running else ""
    row = db.execute("SELECT MAX(e.incident_id) FROM escalations e JOIN notifications n ON n.incident_id = "
                     f"e.incident_id WHERE n.responder=? {only}", (name,)).fetchone()
    return row[0] if row else None


REPLY = re.compile(r"^\s*([A-Za-z]{2,10})\b[\s:#-]*([0-9]{1,9}[\s-]?[A-Za-z]{2})?\s*[.!]*\s*$")


def answer(db: sqlite_utils.Database, responder: Responder, channel: str, text: str, now: float,
           policy: Policy) -> incidents.Effect | None:
    """A reply from a responder (already proven hers: her node's key, her phone number). `ACK 17KX`
    acknowledges alert 17; a bare `ACK` the newest running chain that told her. Anything else is
    logged against her newest alert and acknowledges nothing."""
    m = REPLY.match(text or "")
    if not m or m.group(1).upper() != policy.ack_word:
        # "On my way, call me": the coordinators read it in her alert's log.
        newest = _newest_told(db, responder.name)
        log_event(db, newest, now, responder.name, "escalation reply",
                  Wording("{channel}: {text}", channel=channel, text=(text or "")[:300]))
        return None
    ref = re.sub(r"[\s-]", "", m.group(2) or "").upper()
    if ref:
        row = db.execute("SELECT incident_id, state FROM escalations WHERE ref=?", (ref,)).fetchone()
        if row is None:
            log_event(db, None, now, responder.name, "escalation answer ignored",
                      Wording("{channel}: no alert has the reference {ref}", channel=channel, ref=ref))
            return None
    else:
        newest = _newest_told(db, responder.name, running=True)
        row = (newest,) if newest is not None else None
        if row is None:
            log_event(db, None, now, responder.name, "escalation answer ignored",
                      Wording("{channel}: no alert is waiting for her answer", channel=channel))
            return None
    iid = row[0]
    state = db.execute("SELECT state FROM incidents WHERE id=?", (iid,)).fetchone()[0]
    actor = Wording("{name} by {channel}", name=responder.name, channel=channel)
    if state != incidents.OPEN:
        log_event(db, iid, now, str(actor), "escalation answer", Wording("the alert was already {state}", state=state))
        return None
    effect = incidents.acknowledge(db, iid, str(actor), now)
    stop(db, iid, now, incidents.ACKNOWLEDGED, str(actor), policy.time_zone)
    return effect
