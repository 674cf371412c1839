"""The hub as `station hub` runs it: its own database and writer, one MQTT connection (the hub's
account, the only one the broker lets write under <root>/hub/), the stations' events applied as
they come (each stored before the broker is told it arrived), and what it owes each station
published from its `outgoing` table."""

from __future__ import annotations

import json
import logging
import re
import threading

from station.clock import SystemClock
from station.escalation.channels import ChannelError, read_secret
from station.hub import merge, schema
from station.network.mqtt import Broker, MqttLink, client_id
from station.network.publisher import DurablePublisher
from station.storage.writer import Writer

log = logging.getLogger(__name__)
MAX_EVENT_BYTES = 64 * 1024
NEW, DUPLICATE, REFUSED = "new", "duplicate", "refused"
CONFIRM_EVERY_S = 1.0


class HubError(Exception):
    pass


class Hub:
    def __init__(self, cfg, *, clock=None):
        h = cfg.hub
        self.cfg = cfg
        self.root = h["topic_root"]
        self.fold_window_s = float(h["fold_window_s"])
        self.clock = clock or SystemClock()
        path = cfg.base_dir / h["database"]
        self.writer = Writer(path, schema=schema.migrate).start()
        self.link: MqttLink | None = None
        self.applied = self.duplicates = self.refused = 0
        self._topic = re.compile(rf"^{re.escape(self.root)}/stations/([a-z0-9][a-z0-9_-]{{1,31}})/events$")
        self.publisher = DurablePublisher(self.writer, self.clock, lambda: self.link, fetch=self._fetch,
                                          mark=_mark, name="hub-publisher")
        # What each station will be told the hub has applied (station -> seqs), sent every
        # CONFIRM_EVERY_S as ranges: the station sends again only what falls between them.
        self._applied_seqs: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._confirmer = threading.Thread(target=self._confirm_loop, name="hub-confirmer", daemon=True)

    def start(self) -> "Hub":
        h = self.cfg.hub
        if not h["broker"] or not h["password_file"]:
            self.writer.stop()
            raise HubError("[hub] broker and password_file are needed to run the hub")
        try:
            password = read_secret(h["password_file"], self.cfg.base_dir, "[hub] password_file")
        except ChannelError as e:
            self.writer.stop()
            raise HubError(e.reason) from None
        host, port = Broker.parse(h["broker"])
        ca = str(self.cfg.base_dir / h["ca_file"]) if h["ca_file"] else None
        self.link = MqttLink(Broker(host, port, h["username"], password, ca, h["keepalive_s"]),
                             client_id(h["username"], password),
                             subscriptions=[f"{self.root}/stations/+/events"], on_message=self._message,
                             on_state=lambda up: self.publisher.wake()).start()
        self.publisher.start()
        self._confirmer.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._confirmer.is_alive():
            self._confirmer.join(5)
        self.publisher.stop()
        if self.link is not None:
            self.link.stop()
        self.writer.stop()

    def _message(self, topic: str, payload: bytes, ack) -> None:
        m = self._topic.match(topic)
        # The station is the one the topic names: the broker's ACL lets each account write only
        # under its own, whatever the message says of itself.
        if m is None or len(payload) > MAX_EVENT_BYTES:
            self.refused += 1
            log.warning("hub: a message on %s that is not a station's event: dropped", topic[:80])
            ack()
            return
        station = m.group(1)
        try:
            msg = json.loads(payload)
            seq, kind, at, data = int(msg["seq"]), str(msg["kind"]), float(msg["at"]), msg["data"]
            if seq <= 0 or not isinstance(data, dict):
                raise ValueError("bad seq or data")
        except (ValueError, KeyError, TypeError) as e:
            self.refused += 1
            log.warning("hub: an event from station %s that cannot be read (%s): dropped", station, e)
            ack()
            return
        now = self.clock.now()

        def job(db):
            db.execute("SAVEPOINT event")
            try:
                new = merge.apply(db, station, seq, kind, at, data, now, self.fold_window_s)
                db.execute("RELEASE event")
                return NEW if new else DUPLICATE
            except (KeyError, ValueError, TypeError) as e:
                # Well-formed, but its content cannot be applied: kept out, remembered as seen
                # (never retried), counted.
                db.execute("ROLLBACK TO event")
                db.execute("RELEASE event")
                db.execute("INSERT OR IGNORE INTO applied (station, seq, at) VALUES (?,?,?)", (station, seq, now))
                log.warning("hub: event %d from station %s cannot be applied (%s): dropped", seq, station, e)
                return REFUSED

        def committed(result: str) -> None:
            # Acknowledged to the broker only now, in the order received (the writer commits in order).
            ack()
            with self._lock:
                self._applied_seqs.setdefault(station, []).append(seq)
            if result == NEW:
                self.applied += 1
                self.publisher.wake()
            elif result == DUPLICATE:
                self.duplicates += 1
            else:
                self.refused += 1
        # Not waited for: events arriving together share a commit, and a week's backlog drains at
        # the disk's pace, not one fsync per event.
        self.writer.submit(job, on_commit=committed, name="hub-event")

    def _confirm_loop(self) -> None:
        while not self._stop.wait(CONFIRM_EVERY_S):
            with self._lock:
                pending, self._applied_seqs = self._applied_seqs, {}
            if not pending:
                continue
            now = self.clock.now()
            try:
                self.writer.call(lambda db, pending=pending, now=now: [
                    merge.tell(db, station, {"kind": "applied", "ranges": ranges(seqs)}, now)
                    for station, seqs in pending.items()])
            except Exception:
                # Not told this time: each station sends those events again, and is told then.
                log.exception("hub: confirmations could not be queued")
                continue
            self.publisher.wake()

    def _fetch(self, reader, after: int, limit: int) -> list[tuple[int, str, bytes]]:
        rows = reader.execute("SELECT id, station, body FROM outgoing WHERE published_at IS NULL AND id > ? "
                              "ORDER BY id LIMIT ?", (after, limit)).fetchall()
        return [(i, f"{self.root}/hub/to/{station}", body.encode()) for i, station, body in rows]

    def status(self) -> dict:
        return {"connected": bool(self.link and self.link.connected), "error": self.link.error if self.link else "",
                "applied": self.applied, "duplicates": self.duplicates, "refused": self.refused,
                "published": self.publisher.published}


def ranges(seqs: list[int]) -> list[list[int]]:
    """[3, 4, 5, 9, 7] -> [[3, 5], [7, 7], [9, 9]]."""
    out: list[list[int]] = []
    for n in sorted(set(seqs)):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def _mark(db, ids: list[int], at: float) -> None:
    db.conn.executemany("UPDATE outgoing SET published_at=? WHERE id=?", [(at, i) for i in ids])
