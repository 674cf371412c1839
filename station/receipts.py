"""Receipts back to the bracelet over the mesh: "alert received", "cancel received".

The obligation is written in the same transaction as the incident (a `receipts` row, queued),
so it survives a crash; this thread sends queued receipts when the radio link is up, spaced
out for airtime, and records what happened (sent with its packet id, then delivered or failed
from the mesh's routing answer, or expired). It never runs on the ingestion path.
"""

from __future__ import annotations

import logging
import threading
import time

import sqlite_utils

from station.radio.link import LinkDown
from station.storage import db as dbmod
from station.storage.writer import Writer

log = logging.getLogger(__name__)

SPACING_S = 1.0   # at most one receipt a second: a LoRa channel carries only a few packets a second


class ReceiptSender:
    def __init__(self, writer: Writer, link, clock, *, min_interval_s: float, ttl_s: float,
                 claim_answer=lambda packet_id: None):
        self.writer = writer
        self.claim_answer = claim_answer
        self.link = link
        self.clock = clock
        self.min_interval_s = min_interval_s
        self.ttl_s = ttl_s
        self.alive_at = time.monotonic()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_sent: dict[tuple[int, str], float] = {}
        self._thread = threading.Thread(target=self._run, name="receipts", daemon=True)

    def start(self) -> "ReceiptSender":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(3)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        reader = dbmod.connect(self.writer.path)
        try:
            while not self._stop.is_set():
                self.alive_at = time.monotonic()
                self._wake.wait(1.0)
                self._wake.clear()
                try:
                    self._send_queued(reader)
                except Exception:
                    log.exception("receipt sending failed; will retry")
        finally:
            reader.conn.close()

    def _mark(self, rid: int, state: str, reason: str | None = None, packet_id: int | None = None) -> None:
        at = self.clock.now()

        def job(db):
            nonlocal state, reason
            answer = self.claim_answer(packet_id) if packet_id else None
            if answer is not None:
                state, reason = answer
            db.execute("UPDATE receipts SET state=?, reason=?, packet_id=COALESCE(?, packet_id), updated_at=? "
                       "WHERE id=?", (state, reason, packet_id, at, rid))
        self.writer.call(job)

    def _send_queued(self, reader: sqlite_utils.Database) -> None:
        rows = reader.execute("SELECT id, node_num, kind, text, created_at FROM receipts "
                              "WHERE state='queued' ORDER BY id").fetchall()
        for rid, num, kind, text, created in rows:
            if self._stop.is_set():
                return
            now = self.clock.now()
            if now - created > self.ttl_s:
                self._mark(rid, "expired", f"not sent within {self.ttl_s:g} s")
                continue
            last = self._last_sent.get((num, kind))
            if last is not None and time.monotonic() - last < self.min_interval_s:
                self._mark(rid, "skipped", "rate limited: the same receipt was sent moments ago")
                continue
            if not self.link.connected:
                return  # try again when the link is back
            try:
                packet_id = self.link.send_text(num, text)
            except LinkDown as e:
                log.info("receipt %s waits for the radio: %s", rid, e)
                return
            self._last_sent[(num, kind)] = time.monotonic()
            self._mark(rid, "sent", None, packet_id)
            self._stop.wait(SPACING_S)
