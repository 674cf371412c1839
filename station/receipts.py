"""Receipts back to the bracelet over the mesh: "alert received", "cancel received".

The obligation is written in the same transaction as the incident (a `receipts` row, queued),
so it survives a crash. This thread sends due receipts when the radio link is up and follows
each to an end: `delivered` (the bracelet's own ACK) or `failed`/`expired` with the reason,
never left "sent". What real firmware does to a text on its way shapes the rules here
(github:meshtastic/firmware, v2.7.26):
- a second text within 2 s of the previous one is dropped by the radio while it reports it
  queued (PhoneAPI.cpp handleToRadioPacket, from v2.7.0): texts leave at least 2.5 s apart;
- failures the radio raises itself (MAX_RETRANSMIT, PKI_SEND_FAIL_PUBLIC_KEY, DUTY_CYCLE_LIMIT)
  and implicit ACKs come from the station's own node, not the bracelet (Router.cpp:197,
  ReliableRouter.cpp:42-62). An implicit ACK only says a relay repeated it: the receipt is
  `relayed` and still waits for the bracelet;
- a refusal can also come as queueStatus.res or, on 2.7.0-2.7.3, a ClientNotification;
- silence is an answer too: after `ack_timeout_s` the attempt has failed.
A failed attempt is retried a bounded number of times when retrying can help, with the reason
of each attempt in the row. It never runs on the ingestion path.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import sqlite_utils
from meshtastic.protobuf import mesh_pb2

from station.incidents import log_event
from station.radio.link import LinkDown
from station.radio.reasons import plain  # noqa: F401  (the console shows receipts' reasons with it)
from station.storage import db as dbmod
from station.storage.writer import Writer
from station.wording import Wording

log = logging.getLogger(__name__)

@dataclass
class MemoryReceipt:
    """A receipt sent while the database is out. The library returns from a send only after a
    fixed sleep, so the database can come back, and the alert's row be written, while the text is
    on its way: that row then waits as `sending` (`row`) and takes the packet id when the send
    returns, instead of being queued and sent a second time."""
    num: int
    text: str
    packet_id: int | None = None
    sent_at: float | None = None
    row: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


TEXT_SPACING_S = 2.5          # the firmware's 2 s text limit, plus the serial transit
Err = mesh_pb2.Routing.Error
# What the station does before trying again, and when: "later" waits retry_after_s (the bracelet
# may come back in reach), "air" waits for the duty cycle's hour to free air time, "soon" only the
# text spacing. Codes not listed cannot be mended by retrying.
RETRY = {
    "MAX_RETRANSMIT": ("", "later"),
    "NO_RESPONSE": ("", "later"),
    "TIMEOUT": ("", "later"),
    "NO_ROUTE": ("", "later"),
    "GOT_NAK": ("", "later"),
    "no answer": ("", "later"),
    "DUTY_CYCLE_LIMIT": ("", "air"),              # EU_868 allows 10 % of an hour on air
    "RATE_LIMIT_EXCEEDED": ("", "soon"),
    "radio dropped it": ("", "soon"),
    "PKI_SEND_FAIL_PUBLIC_KEY": ("push_key", "soon"),   # the radio lacks the bracelet's key: give it
    "PKI_UNKNOWN_PUBKEY": ("announce", "later"),        # the bracelet lacks ours: announce it
}
AIR_WAIT_S = 600.0
@dataclass(frozen=True)
class Settings:
    min_interval_s: float
    ttl_s: float
    ack_timeout_s: float = 60.0
    max_attempts: int = 3
    retry_after_s: float = 30.0

    def wait(self, when: str) -> float:
        return {"later": self.retry_after_s, "air": max(AIR_WAIT_S, self.retry_after_s)}.get(when, TEXT_SPACING_S)


@dataclass(frozen=True)
class Followup:
    """Something the daemon must do before a retry can succeed."""
    action: str                # push_key, announce
    node_num: int


def error_name(code: int) -> str:
    try:
        return Err.Name(code)
    except ValueError:
        return f"error {code}"


def record_answer(db: sqlite_utils.Database, packet_id: int, sender: int, error: str, own_node: int | None,
                  at: float, settings: Settings, proven: bool = True) -> tuple[bool, Followup | None]:
    """A routing answer to a packet the station sent. Returns (matched a receipt, follow-up).
    `proven`: the answer came on the office channel or from the station's own radio; a routing
    packet is never PKI (Router.cpp:655-656), so that is the best proof an ACK can carry, and one
    from the bracelet's number on any other channel is someone else's word for it."""
    row = db.execute("SELECT id, node_num, state, attempts, incident_id FROM receipts WHERE packet_id=? "
                     "AND state IN ('sent', 'relayed')", (packet_id,)).fetchone()
    if row is None:
        return False, None
    rid, node, state, attempts, incident_id = row
    if not proven:
        log_event(db, incident_id, at, "station", "receipt answer ignored",
                  Wording("{error} from {node}, heard off the office channel", error=error, node=f"!{sender:08x}"))
        return True, None
    if sender == node:
        if error == "NONE":
            db.execute("UPDATE receipts SET state='delivered', reason=NULL, answered_by='bracelet', updated_at=? "
                       "WHERE id=?", (at, rid))
            return True, None
        return True, attempt_failed(db, rid, node, attempts, error, f"{error}: answered by the bracelet", at,
                                    settings)
    if own_node is not None and sender == own_node:
        if error == "NONE":
            if state == "sent":
                db.execute("UPDATE receipts SET state='relayed', answered_by='mesh', updated_at=? WHERE id=?",
                           (at, rid))
            return True, None
        return True, attempt_failed(db, rid, node, attempts, error, f"{error}: reported by the station's radio",
                                    at, settings)
    return False, None   # someone else's answer that happens to carry our id


def attempt_failed(db: sqlite_utils.Database, rid: int, node: int, attempts: int, code: str, reason: str,
                   at: float, settings: Settings) -> Followup | None:
    retry = RETRY.get(code)
    if retry is None or attempts >= settings.max_attempts:
        final = reason if retry is None else f"{reason} (gave up after {attempts} attempts)"
        db.execute("UPDATE receipts SET state='failed', reason=?, updated_at=? WHERE id=?", (final[:300], at, rid))
        return None
    action, when = retry
    db.execute("UPDATE receipts SET state='queued', reason=?, next_attempt_at=?, updated_at=? WHERE id=?",
               (reason[:300], at + settings.wait(when), at, rid))
    return Followup(action, node) if action else None


class ReceiptSender:
    def __init__(self, writer: Writer, link, clock, settings: Settings, *,
                 on_followup: Callable[[Followup], None] | None = None):
        self.writer = writer
        self.link = link
        self.clock = clock
        self.settings = settings
        self.on_followup = on_followup or (lambda f: None)
        self.alive_at = time.monotonic()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_sent: dict[tuple[int, str], float] = {}
        self._last_text = 0.0
        # Answers that overtook the record of their send (the library returns from a send only
        # after a fixed sleep): kept for the receipt that will claim the id. Writer thread only.
        self._early: collections.OrderedDict[int, tuple[int, str]] = collections.OrderedDict()
        # Receipts for alerts the database cannot take yet: (node, text, on_sent(packet id, at)).
        self._from_memory: collections.deque = collections.deque()
        self._thread = threading.Thread(target=self._run, name="receipts", daemon=True)

    def start(self) -> "ReceiptSender":
        # A receipt from memory whose send a stop cut short: whether it left is unknown, and a
        # second "alert received" is better than none.
        self.writer.call(lambda db: db.execute(
            "UPDATE receipts SET state='queued', reason='the station stopped while sending it from memory' "
            "WHERE state='sending'"))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(3)

    def wake(self) -> None:
        self._wake.set()

    def send_from_memory(self, receipt: MemoryReceipt) -> None:
        """A receipt for an alert held in memory while the database is out: sent before anything
        else, once; its row is written when the alert's is (ingest.py), with this packet id."""
        self._from_memory.append(receipt)
        self._wake.set()

    def _send_from_memory(self) -> None:
        while self._from_memory and self.link.connected and not self._stop.is_set():
            m = self._from_memory[0]
            wait = TEXT_SPACING_S - (time.monotonic() - self._last_text)
            if wait > 0 and self._stop.wait(wait):
                return
            try:
                packet_id = self.link.send_text(m.num, m.text)
            except LinkDown as e:
                log.info("a receipt from memory waits for the radio: %s", e)
                return
            self._from_memory.popleft()
            self._last_text = time.monotonic()
            self._last_sent[(m.num, "opened")] = self._last_text
            with m.lock:
                m.packet_id, m.sent_at = packet_id, self.clock.now()
                row = m.row
            if row is not None:      # the alert was stored meanwhile: its row waits as `sending`
                self._mark(row, "sent", None, packet_id, attempt=True)

    # -- answers (called inside writer jobs, or they submit one) ---------------------------------
    def answer_in_tx(self, db: sqlite_utils.Database, packet_id: int, sender: int, error: str, at: float,
                     proven: bool = True) -> bool:
        """From the ingest of a ROUTING_APP packet. True when it concerned one of our receipts."""
        matched, follow = record_answer(db, packet_id, sender, error, self.link.state.node_num, at, self.settings,
                                        proven)
        if not matched and proven:
            self._early[packet_id] = (sender, error)
            while len(self._early) > 256:
                self._early.popitem(last=False)
        self._after(follow)
        return matched

    def radio_refused(self, packet_id: int, code: str, detail: str) -> None:
        """queueStatus.res or a ClientNotification about a packet we sent (any thread)."""
        at = self.clock.now()

        def job(db):
            row = db.execute("SELECT id, node_num, attempts FROM receipts WHERE packet_id=? "
                             "AND state IN ('sent', 'relayed')", (packet_id,)).fetchone()
            if row is None:
                return
            self._after(attempt_failed(db, row[0], row[1], row[2], code, f"{code}: {detail}", at, self.settings))
        self.writer.submit(job, name="receipt-refused")

    def _after(self, follow: Followup | None) -> None:
        if follow is not None:
            try:
                self.on_followup(follow)
            except Exception:
                log.exception("receipt follow-up failed")
        self._wake.set()

    # -- the sending thread -----------------------------------------------------------------------
    def _run(self) -> None:
        reader = dbmod.connect(self.writer.path)
        try:
            while not self._stop.is_set():
                self.alive_at = time.monotonic()
                self._wake.wait(0.5)
                self._wake.clear()
                try:
                    self._send_from_memory()
                    if self.writer.unavailable is None:   # each step below waits on a commit
                        self._time_out(reader)
                        self._send_due(reader)
                except Exception:
                    log.exception("receipt sending failed; will retry")
        finally:
            reader.conn.close()

    def _time_out(self, reader: sqlite_utils.Database) -> None:
        now = self.clock.now()
        rows = reader.execute("SELECT id, node_num, attempts, state FROM receipts INDEXED BY receipts_waiting "
                              "WHERE state IN ('sent', 'relayed') AND sent_at < ?",
                              (now - self.settings.ack_timeout_s,)).fetchall()
        for rid, node, attempts, state in rows:
            what = "relayed by the mesh, but" if state == "relayed" else "sent, but"
            reason = f"no answer: {what} the bracelet did not acknowledge within {self.settings.ack_timeout_s:g} s"

            def job(db, rid=rid, node=node, attempts=attempts, reason=reason):
                # Only if nothing answered meanwhile.
                if db.execute("SELECT 1 FROM receipts WHERE id=? AND state IN ('sent', 'relayed')", (rid,)).fetchone():
                    self._after(attempt_failed(db, rid, node, attempts, "no answer", reason, now, self.settings))
            self.writer.call(job)

    def _send_due(self, reader: sqlite_utils.Database) -> None:
        now = self.clock.now()
        # A verified wearer's receipts first (priority 0), then strangers', oldest first within each.
        rows = reader.execute("SELECT id, node_num, kind, text, created_at, attempts FROM receipts "
                              "INDEXED BY receipts_queued WHERE state = 'queued' "
                              "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY priority, id",
                              (now,)).fetchall()
        for rid, num, kind, text, created, attempts in rows:
            if self._stop.is_set():
                return
            now = self.clock.now()
            if now - created > self.settings.ttl_s:
                self._mark(rid, "expired", f"not delivered within {self.settings.ttl_s:g} s")
                continue
            last = self._last_sent.get((num, kind))
            # Only a wearer's receipts repeat themselves; a responder's step and stand-down differ.
            if attempts == 0 and last is not None and time.monotonic() - last < self.settings.min_interval_s \
                    and kind != "escalation":
                self._mark(rid, "skipped", "the same receipt was sent to this bracelet moments ago")
                continue
            if not self.link.connected:
                return  # try again when the link is back
            wait = TEXT_SPACING_S - (time.monotonic() - self._last_text)
            if wait > 0 and self._stop.wait(wait):
                return
            try:
                packet_id = self.link.send_text(num, text)
            except LinkDown as e:
                log.info("receipt %s waits for the radio: %s", rid, e)
                return
            self._last_text = time.monotonic()
            self._last_sent[(num, kind)] = self._last_text
            self._mark(rid, "sent", None, packet_id, attempt=True)
            # Look again: a wearer's receipt queued meanwhile goes before the rest of this list.
            self._wake.set()
            return

    def _mark(self, rid: int, state: str, reason: str | None = None, packet_id: int | None = None, *,
              attempt: bool = False) -> None:
        at = self.clock.now()

        def job(db):
            db.execute("UPDATE receipts SET state=?, reason=COALESCE(?, reason), packet_id=COALESCE(?, packet_id), "
                       "updated_at=?, sent_at=CASE WHEN ? THEN ? ELSE sent_at END, attempts=attempts+? WHERE id=?",
                       (state, reason, packet_id, at, int(attempt), at, int(attempt), rid))
            early = self._early.pop(packet_id, None) if packet_id else None
            if early is not None:
                self._after(record_answer(db, packet_id, early[0], early[1], self.link.state.node_num, at,
                                          self.settings)[1])
        self.writer.call(job)
