"""The relay worker: plans and promotes outbox rows, then sends ready ones, one at a time.

For each row: check the limits, commit `sending` (with its cost), make the one request, commit
the outcome. A request that may have reached the platform is never repeated automatically,
except with the same idempotency key where the platform honours one.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from station.relay import outbox as ob
from station.relay.destinations.base import Permanent, RateLimited, Transient, Uncertain
from station.storage import db as dbmod
from station.storage.writer import Writer

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 2.0
RATE_LIMIT_DEFAULT_S = 900.0
SWEEP_EVERY_S = 0.5   # X's window, when a 429 comes without a reset time


class RelayWorker:
    def __init__(self, writer: Writer, plan: ob.Plan, clients: dict, connectivity, clock, *,
                 max_attempts: int = 8, backoff_max_s: float = 900.0, rng: random.Random | None = None,
                 idle_s: float = 1.0, backoff_base_s: float = BACKOFF_BASE_S, claim_gate=None):
        self.writer = writer
        self.plan = plan
        self.clients = clients
        self.connectivity = connectivity
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_max_s = backoff_max_s
        self.rng = rng or random.Random()
        self.idle_s = idle_s
        self.backoff_base_s = backoff_base_s
        # On the NGO's network: whether the hub gives this station the post (station/network/claims.py).
        self.claim_gate = claim_gate
        self.alive_at = time.monotonic()
        self.sent = 0
        self.passes = 0           # complete plan-and-drain passes: what "nothing happened" is measured in
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay-worker", daemon=True)

    def start(self) -> "RelayWorker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def wake(self) -> None:
        self._wake.set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        windows = {name: c.idempotency_window_s for name, c in self.clients.items() if c.idempotency_window_s}
        self.writer.call(lambda db: ob.recover_after_restart(db, self.plan, self.clock.now(), windows))
        reader = dbmod.connect(self.writer.path)
        woken, last_sweep = True, 0.0
        try:
            while not self._stop.is_set():
                self.alive_at = time.monotonic()
                try:
                    # Planning runs when something happened (an alert, an approval) or twice a second;
                    # not on every short wake between rate-limited posts.
                    if woken or time.monotonic() - last_sweep >= SWEEP_EVERY_S:
                        self.writer.call(lambda db: ob.sweep(db, self.plan, self.clock.now()))
                        last_sweep = time.monotonic()
                    deferred_until = self._drain(reader)
                    wait = self.idle_s
                    for nxt in (ob.next_wake(reader, self.clock.now()), deferred_until):
                        if nxt is not None:
                            wait = max(0.0, min(wait, nxt - self.clock.now()))
                except Exception:
                    log.exception("relay step failed; trying again")
                    wait = self.idle_s
                self.passes += 1
                woken = self._wake.wait(wait)
                self._wake.clear()
        finally:
            reader.conn.close()

    def _skip(self, reader, at: float) -> set[str]:
        skip = set(ob.blocked_destinations(reader, at))
        skip |= {name for name in self.clients if not self.connectivity.reachable(name)}
        skip |= {d.name for d in self.plan.destinations if d.name not in self.clients}
        return skip

    def _drain(self, reader) -> float | None:
        """Send until nothing is ready; returns when a destination held back by its own limits
        (rate, daily cap) may send again. Such a destination is skipped for the rest of the
        pass rather than each of its rows being rescheduled."""
        deferred: dict[str, float] = {}
        while not self._stop.is_set():
            self.alive_at = time.monotonic()
            at = self.clock.now()
            skip = self._skip(reader, at) | {d for d, until in deferred.items() if until > at}
            row = ob.next_ready(reader, at, skip)
            if row is None:
                return min((u for u in deferred.values() if u > at), default=None)
            until = self._send(reader, row)
            if until is not None:
                deferred[row["destination"]] = until
        return None

    def _send(self, reader, row: dict) -> float | None:
        """Send one row; returns a time if the destination's own limits hold it back until then."""
        dest = self.plan.by_name(row["destination"])
        client = self.clients[row["destination"]]
        at = self.clock.now()
        limited = ob.limit_check(reader, dest, row, at)
        if limited is not None:
            reason, until = limited
            if until is None:
                self.writer.call(lambda db: ob.transition(db, row["id"], (ob.READY,), ob.HELD, at, reason=reason))
                return None
            if row["reason"] != reason:   # say why it waits, once, not at every pass
                self.writer.call(lambda db: db.execute(
                    "UPDATE outbox SET reason=?, updated_at=? WHERE id=? AND state='ready'", (reason, at, row["id"])))
            return until
        claim = None
        if self.claim_gate is not None:
            claim, holder = self.claim_gate(row)
            if claim == "wait":
                return at + 1.0
            if claim == "denied":
                why = f"posted by station {holder}: the hub gave it the claim"
                self.writer.call(lambda db: ob.transition(db, row["id"], (ob.READY,), ob.CANCELLED, at, reason=why))
                return None
        cost = 0.0 if row["kind"] == "retraction" else (dest.cost_per_link_post if row["has_link"]
                                                         else dest.cost_per_post)
        # Committed before the request: if the station dies now, the row says it may have left.
        first = row["first_attempt_at"] or at
        if not self.writer.call(lambda db: ob.transition(
                db, row["id"], (ob.READY,), ob.SENDING, at, attempts=row["attempts"] + 1, sent_at=at, cost=cost,
                first_attempt_at=first, claim=claim)):
            return
        try:
            if row["kind"] == "retraction":
                client.delete(row["reply_to"])
                posted = None
            else:
                posted = client.post(row["text"], key=row["idempotency_key"], reply_to=row["reply_to"])
        # Values are copied out of the exception first: Python unbinds `e` when the except block ends,
        # and a writer job must never depend on when it runs.
        except RateLimited as e:
            until = self.clock.now() + (RATE_LIMIT_DEFAULT_S if e.wait_s is None else e.wait_s)
            reason = e.reason
            self.writer.call(lambda db: (ob.block(db, dest.name, until, reason, self.clock.now()), ob.transition(
                db, row["id"], (ob.SENDING,), ob.READY, self.clock.now(), reason=f"{reason}; waiting until the reset",
                next_attempt_at=until, attempts=row["attempts"], sent_at=None, cost=0.0)))
            self.connectivity.report(dest.name, True)
            return
        except Permanent as e:
            reason = e.reason
            self.writer.call(lambda db: ob.transition(db, row["id"], (ob.SENDING,), ob.FAILED, self.clock.now(),
                                                      reason=reason, sent_at=None, cost=0.0))
            self.connectivity.report(dest.name, True)
            return
        except Transient as e:
            self._retry_later(row, e.reason, counts=e.reached)
            self.connectivity.report(dest.name, e.reached, e.reason)
            return
        except Uncertain as e:
            reason = e.reason
            self.connectivity.report(dest.name, False, reason)
            window = client.idempotency_window_s
            if window is not None and self.clock.now() - first < window:
                # The platform returns the first post for a repeated key: repeating is reconciling.
                self._retry_later(row, f"{reason}; repeating with the same idempotency key to reconcile")
                return
            self.writer.call(lambda db: ob.transition(db, row["id"], (ob.SENDING,), ob.UNCERTAIN, self.clock.now(),
                                                      reason=reason))
            return
        except Exception as e:
            # Whatever else the request or its answer did (a library's surprise at an odd body):
            # the request may have left, so the row is never failed (a retry could post twice)
            # and never left in `sending`: a person settles it.
            reason = f"unexpected answer ({type(e).__name__}: {e}): the post may have been published"[:300]
            log.exception("destination %s: unexpected error while posting", dest.name)
            self.writer.call(lambda db: ob.transition(db, row["id"], (ob.SENDING,), ob.UNCERTAIN, self.clock.now(),
                                                      reason=reason))
            return
        self.connectivity.report(dest.name, True)
        self.sent += 1
        self.writer.call(lambda db: ob.transition(
            db, row["id"], (ob.SENDING,), ob.SENT, self.clock.now(), reason=None,
            remote_id=posted.remote_id if posted else row["reply_to"], url=posted.url if posted else None))

    def _retry_later(self, row: dict, reason: str, counts: bool = True) -> None:
        attempts = row["attempts"] + 1 if counts else row["attempts"]
        at = self.clock.now()
        if attempts >= self.max_attempts:
            self.writer.call(lambda db: ob.transition(db, row["id"], (ob.SENDING,), ob.FAILED, at,
                                                      reason=f"gave up after {attempts} attempts: {reason}",
                                                      sent_at=None, cost=0.0))
            return
        # Capped exponential backoff with jitter; a connection that failed is instead gated by the
        # connectivity monitor, which wakes the worker when the host answers again.
        delay = (min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempts - 1)) * (0.5 + self.rng.random())
                 if counts else 0.0)
        self.writer.call(lambda db: ob.transition(db, row["id"], (ob.SENDING,), ob.READY, at,
                                                  reason=f"{reason}; attempt {attempts} of {self.max_attempts}",
                                                  attempts=attempts, next_attempt_at=at + delay, sent_at=None,
                                                  cost=0.0))
