"""What the station forgets, and when ([retention] in the config), applied once a day by the daemon.

A station that keeps every packet forever is a map of everyone's movements for whoever seizes it.
Kept: incidents with their event logs, the position each alert was raised at (the evidence), the
registry, and how much each node sent each day (`traffic_days`). Forgotten, in small batches so
that an alert is never kept waiting behind a purge:
- after `unregistered_days`: packets, positions and telemetry of nodes that are not registered
  bracelets, rejected frames, and such a node itself once it has been silent that long (only its
  position if one of its alerts is on record);
- after `track_days`: registered bracelets' positions (their track), and the raw bytes of their
  packets, except while one of their alerts is still open and for the packet that opened an
  alert; the station's own stored fixes.
Rows are deleted with secure_delete on (the writer's connection), so the freed pages hold zeros,
not the rows; backups are compact copies with no free page at all.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import sqlite_utils

from station.storage import records

log = logging.getLogger(__name__)

DAY_S = 86400.0
BATCH = 2000


@dataclass(frozen=True)
class Policy:
    unregistered_days: float
    track_days: float

    @classmethod
    def from_config(cls, cfg) -> "Policy":
        return cls(float(cfg.retention["unregistered_days"]), float(cfg.retention["track_days"]))

    def describe(self) -> str:
        def days(n: float) -> str:
            return "forever" if not n else f"{n:g} days"
        return f"unregistered nodes {days(self.unregistered_days)}, bracelet tracks {days(self.track_days)}"


_UNREGISTERED = "NOT IN (SELECT node_num FROM bracelets)"
_OPENING = "(SELECT opening_packet FROM incidents WHERE opening_packet IS NOT NULL)"


def _aggregate(db: sqlite_utils.Database, ids: list[int]) -> None:
    """Per node and UTC day, how many packets the batch about to be deleted held."""
    marks = ",".join("?" * len(ids))
    db.execute(f"""INSERT INTO traffic_days (day, node_num, packets)
                   SELECT date(received_at, 'unixepoch'), from_num, COUNT(*) FROM packets WHERE id IN ({marks})
                   GROUP BY 1, 2
                   ON CONFLICT(day, node_num) DO UPDATE SET packets = packets + excluded.packets""", ids)


def purge_batch(db: sqlite_utils.Database, policy: Policy, now: float) -> dict[str, int]:
    """One batch of what is due (inside a writer transaction); counts of what went. Called again
    until it returns nothing."""
    out = {"packets": 0, "positions": 0, "telemetry": 0, "rejects": 0, "raw_cleared": 0, "nodes": 0}
    if policy.unregistered_days:
        cut = now - policy.unregistered_days * DAY_S
        ids = [r[0] for r in db.execute(
            f"SELECT id FROM packets WHERE received_at < ? AND from_num {_UNREGISTERED} AND id NOT IN {_OPENING} "
            "LIMIT ?", (cut, BATCH))]
        if ids:
            _aggregate(db, ids)
            marks = ",".join("?" * len(ids))
            out["packets"] = db.execute(f"DELETE FROM packets WHERE id IN ({marks})", ids).rowcount
        out["positions"] += db.execute(
            f"DELETE FROM positions WHERE rowid IN (SELECT rowid FROM positions WHERE received_at < ? "
            f"AND (node_num IS NOT NULL AND node_num {_UNREGISTERED}) LIMIT ?)", (cut, BATCH)).rowcount
        out["telemetry"] += db.execute(
            f"DELETE FROM telemetry WHERE rowid IN (SELECT rowid FROM telemetry WHERE received_at < ? "
            f"AND node_num {_UNREGISTERED} LIMIT ?)", (cut, BATCH)).rowcount
        out["rejects"] = db.execute("DELETE FROM rejects WHERE rowid IN (SELECT rowid FROM rejects WHERE at < ? "
                                    "LIMIT ?)", (cut, BATCH)).rowcount
        # A stranger not heard for that long is forgotten, name and all, unless one of its
        # alerts is on record (the alert page names its sender): then only its position goes.
        quiet = f"COALESCE(last_heard, first_heard) < ? AND num {_UNREGISTERED}"
        out["nodes"] = db.execute(
            f"DELETE FROM nodes WHERE {quiet} AND num NOT IN (SELECT node_num FROM incidents)", (cut,)).rowcount
        out["nodes"] += db.execute(
            f"UPDATE nodes SET lat=NULL, lon=NULL, fix_at=NULL, fix_precision_bits=NULL WHERE lat IS NOT NULL "
            f"AND {quiet}", (cut,)).rowcount
    if policy.track_days:
        cut = now - policy.track_days * DAY_S
        # While one of her alerts is open, all of her track may be needed (where she was before).
        open_alert = "(SELECT node_num FROM incidents WHERE state != 'resolved')"
        out["positions"] += db.execute(
            f"""DELETE FROM positions WHERE rowid IN (SELECT rowid FROM positions WHERE received_at < ?
                AND node_num IN (SELECT node_num FROM bracelets) AND node_num NOT IN {open_alert} LIMIT ?)""",
            (cut, BATCH)).rowcount
        # The station's own fixes: its office, stored every 15 minutes, needed for no alert.
        out["positions"] += db.execute(
            "DELETE FROM positions WHERE rowid IN (SELECT rowid FROM positions WHERE node_num IS NULL "
            "AND received_at < ? LIMIT ?)", (cut, BATCH)).rowcount
        out["raw_cleared"] = db.execute(
            f"""UPDATE packets SET raw = NULL WHERE id IN (SELECT id FROM packets WHERE received_at < ?
                AND raw IS NOT NULL AND from_num IN (SELECT node_num FROM bracelets) AND id NOT IN {_OPENING}
                AND from_num NOT IN {open_alert} LIMIT ?)""", (cut, BATCH)).rowcount
    return out


class Purger:
    """Runs a purge as a chain of writer jobs, one batch each, so that what arrives from the radio
    meanwhile is committed between them; the outcome is kept in station_state for the console."""

    def __init__(self, writer, policy: Policy, now: Callable[[], float]):
        self.writer = writer
        self.policy = policy
        self.now = now
        self.running = threading.Event()
        self.done = threading.Event()     # set after each whole purge (tests wait on it)

    def start(self) -> bool:
        if self.running.is_set():
            return False
        self.running.set()
        self.done.clear()
        self._step({}, self.now())
        return True

    def _step(self, totals: dict[str, int], started: float) -> None:
        at = self.now()
        self.writer.submit(lambda db: self._batch(db, at),
                           on_commit=lambda got: self._after(got, totals, started), name="retention")

    def _batch(self, db, at: float) -> dict[str, int] | str:
        # A failed batch is undone and ends this purge (said in the state), so that the next
        # day's purge is not refused as still running.
        db.execute("SAVEPOINT purge")
        try:
            got = purge_batch(db, self.policy, at)
        except Exception as e:
            db.execute("ROLLBACK TO purge")
            db.execute("RELEASE purge")
            log.exception("retention batch failed")
            return f"{type(e).__name__}: {e}"
        db.execute("RELEASE purge")
        return got

    def _after(self, got: dict[str, int] | str, totals: dict[str, int], started: float) -> None:
        error = got if isinstance(got, str) else None
        for k, v in ({} if error else got).items():
            totals[k] = totals.get(k, 0) + v
        if not error and any(got.values()):
            self._step(totals, started)
            return
        summary = {"at": started, "finished_at": self.now(), "policy": self.policy.describe(),
                   "unregistered_days": self.policy.unregistered_days, "track_days": self.policy.track_days,
                   "removed": totals, "error": error}
        at = self.now()
        self.writer.submit(lambda db: records.set_state(db, "retention", summary, at), name="retention-state",
                           on_commit=lambda _: self._finished(totals))

    def _finished(self, totals: dict[str, int]) -> None:
        log.info("retention: %s", ", ".join(f"{v} {k}" for k, v in totals.items() if v) or "nothing was due")
        self.running.clear()
        self.done.set()
