"""Publishing a durable table over MQTT, for the station's event queue and the hub's answers alike:
rows go out in order, at most MAX_INFLIGHT unacknowledged, and each is marked published when the
broker acknowledges it (QoS 1). After a restart every unmarked row goes again; the receiver applies
each once."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from station.storage import db as dbmod

log = logging.getLogger(__name__)
BATCH = 200
MAX_INFLIGHT = 500
IDLE_S = 0.1
LOST_CHECK_S = 5.0


class DurablePublisher:
    def __init__(self, writer, clock, link_of: Callable[[], object | None], *,
                 fetch: Callable[..., list[tuple[int, str, bytes]]],
                 mark: Callable[..., None], name: str,
                 lost: Callable[..., list[tuple[int, str, bytes]]] | None = None):
        """`fetch(reader, after, limit)`: (id, topic, payload) not yet published, in order;
        `mark(db, ids, at)`: record those the broker has; `lost(reader, limit)`: rows published
        that the receiver shows it never got, to send again (looked for every LOST_CHECK_S)."""
        self.writer = writer
        self.clock = clock
        self.link_of = link_of
        self.fetch = fetch
        self.mark = mark
        self.lost = lost
        self.resent = 0
        self._lost_checked = 0.0
        self.published = 0
        self._inflight: list[tuple[object, int]] = []
        self._sent_upto = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def start(self) -> "DurablePublisher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        reader = dbmod.connect(self.writer.path)
        try:
            while not self._stop.is_set():
                try:
                    self._settle()
                    sent = self._send(reader)
                except Exception:
                    log.exception("publishing step failed")
                    sent = 0
                # Idle, a look every IDLE_S on a partial index (microseconds): rows written by other
                # processes (the console, a command) wake nobody here.
                self._wake.wait(0.02 if sent or self._inflight else IDLE_S)
                self._wake.clear()
        finally:
            reader.conn.close()

    def _send(self, reader) -> int:
        link = self.link_of()
        if link is None or not link.connected or len(self._inflight) >= MAX_INFLIGHT:
            return 0
        if not self._inflight:
            # Nothing in flight: from the oldest unacknowledged again (paho resends its own after a
            # reconnection; after a restart nothing is in flight, and every unmarked row goes).
            self._sent_upto = 0
        sent = 0
        for row_id, topic, payload in self.fetch(reader, self._sent_upto, BATCH):
            info = link.publish(topic, payload)
            if info is None:
                break
            self._inflight.append((info, row_id))
            self._sent_upto = row_id
            sent += 1
        if not sent and self.lost is not None and time.monotonic() - self._lost_checked >= LOST_CHECK_S:
            self._lost_checked = time.monotonic()
            for row_id, topic, payload in self.lost(reader, BATCH):
                info = link.publish(topic, payload)
                if info is None:
                    break
                self._inflight.append((info, row_id))
                sent += 1
                self.resent += 1
        return sent

    def _settle(self) -> None:
        done = [row_id for info, row_id in self._inflight if info.is_published()]
        if not done:
            return
        self._inflight = [(i, r) for i, r in self._inflight if not i.is_published()]
        at = self.clock.now()
        self.writer.call(lambda db: self.mark(db, done, at))
        self.published += len(done)
