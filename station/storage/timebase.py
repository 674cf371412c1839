"""Moving this run's timestamps by a step of the clock (station/clock.py).

Every timer is a stored timestamp compared with the station's now(): a retry's due time, an
alert's verification delay, the last press that a second one folds into, the posts counted in a
rate window, a receipt's age, a lockout's end. When the clock steps, moving every timestamp this
run wrote by the same step keeps each of those durations what it was, and puts this run's events
at the time the corrected clock says they happened. Earlier runs' rows are left as written.

Times a device wrote (a packet's rx_time, a GPS fix's time) are the device's, never moved.
"""

from __future__ import annotations

import sqlite_utils
from station.wording import Wording

# Stamps of what has happened: moved when they fall in this run (up to the moment of the step).
PAST = {
    "packets": ("received_at", "last_seen_at"),
    "rejects": ("at",),
    # When a node was heard: a bracelet's silence is counted from it (station/watch).
    "nodes": ("spoofed_at", "first_heard", "last_heard"),
    "positions": ("received_at",),
    "telemetry": ("received_at",),
    "bracelets": ("pinned_at", "added_at", "firmware_seen_at", "pin_failed_at"),
    "incidents": ("opened_at", "last_press_at", "acknowledged_at", "resolved_at", "fix_at"),
    "receipts": ("created_at", "updated_at", "sent_at"),
    "station_state": ("updated_at",),
    "approvals": ("at",),
    "outbox": ("first_attempt_at", "created_at", "updated_at", "sent_at"),
    "destination_limits": ("updated_at",),
    "users": ("created_at", "last_login"),
    "radio_jobs": ("requested_at", "started_at", "finished_at"),
    "press_tests": ("started_at", "passed_at"),
    "console_sessions": ("created_at", "revoked_at"),
    "retired_bracelets": ("added_at", "retired_at"),
    "login_failures": ("failed_at",),
    "escalations": ("started_at", "stopped_at"),
    "notifications": ("created_at", "updated_at", "claimed_at", "sent_at"),
    # alarmed_heard is a copy of nodes.last_heard, and must move with it to stay equal.
    "watch_state": ("alarmed_heard", "checkin_since", "last_checkin_at", "checkin_missed_at"),
    "network_queue": ("created_at", "published_at", "confirmed_at"),
    "network_claims": ("requested_at", "answered_at"),
}
# Deadlines this run set: in the future when set, so moved whenever they are this run's.
DUE = {
    "bracelets": ("pin_locked_until",),
    "receipts": ("next_attempt_at",),
    "outbox": ("next_attempt_at",),
    "destination_limits": ("blocked_until",),
    "users": ("locked_until",),
    "press_tests": ("expires_at",),
    "login_failures": ("locked_until",),
    "escalations": ("next_at",),
    "notifications": ("next_attempt_at",),
}
# The devices' own times, never moved (tests/test_clock_steps.py checks that every stamp column is in one list).
DEVICE = {
    "packets": ("rx_time",),
    "nodes": ("fix_at",),
    "positions": ("fix_at",),
}
# Append-only records (a trigger refuses any change): the log as it was written. The "clock
# stepped" event they hold says from where on, and by how much, the clock moved.
APPEND_ONLY = {
    "events": ("at",),
    "audit": ("at",),
}
# A little past the step, for stamps written while it was being seen.
MARGIN_S = 5.0


def _move(db: sqlite_utils.Database, group: dict[str, tuple[str, ...]], step: float, where: str,
          params: tuple) -> int:
    """Add `step` to each column of `group` whose value matches `where`; how many values moved."""
    tables = set(db.table_names())
    return sum(db.execute(f"UPDATE {table} SET {col} = {col} + ? WHERE {col} {where}", (step, *params)).rowcount
               for table, columns in group.items() if table in tables for col in columns)


def rebase(db: sqlite_utils.Database, step: float, since: float, upto: float) -> int:
    """Move by `step` every stamp this run wrote: past ones in [since, upto], deadlines from
    `since` on. Returns how many values moved."""
    moved = _move(db, PAST, step, "BETWEEN ? AND ?", (since, upto + MARGIN_S))
    moved += _move(db, DUE, step, ">= ?", (since,))
    return moved


def take_step(clock, writer, timeout: float = 120.0) -> tuple[float, int] | None:
    """Move this run's timestamps by the clock's pending step, then let the clock take it:
    (step, values moved), or None when there is no step. Raises when the database cannot take
    it (the clock then keeps running without the step, and timers stay right)."""
    from station.incidents import log_event
    step = clock.pending_step()
    if not step:
        return None
    since, upto = clock.run_started, clock.now()

    def job(db):
        moved = rebase(db, step, since, upto)
        log_event(db, None, upto + step, "station", "clock stepped",
                  Wording("the clock was set {step} s; this run's {n} times were moved with it, so that no "
                          "timer fired early or late", step=f"{step:+.0f}", n=moved))
        return moved
    moved = writer.call(job, timeout=timeout)
    clock.adopt(step)
    return step, moved


def reanchor_after_downtime(db: sqlite_utils.Database, now: float) -> tuple[float, int] | None:
    """At start: a clock that reads earlier than the last thing the station wrote was set back
    while it was off (a Pi's saved time restored at boot). The deadlines the last run set move by
    as much, so that each still has the time it had left at the stop instead of waiting hours
    more; the rest of the record stays as written (late, never early, is the safe side for
    everything else). A clock ahead cannot be told from time that really passed. (step, moved)
    or None."""
    got = db.execute("SELECT at FROM events ORDER BY id DESC LIMIT 1").fetchone()
    if not got or got[0] is None or now >= got[0] - 60:
        return None
    step = now - got[0]
    moved = _move(db, DUE, step, "> ?", (now,))
    from station.incidents import log_event
    log_event(db, None, now, "station", "clock behind the database",
              Wording("the clock reads {step} s before the last record: set back while the station was off; {n} pending "
                      "deadlines keep the time they had left", step=f"{-step:.0f}", n=moved))
    return step, moved
