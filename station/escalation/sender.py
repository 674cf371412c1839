"""Sends queued notifications, one thread per channel (an SMTP server that takes 20 s to time out
must not hold back the SMS). Each message is claimed (`sending`, committed) before it is sent
and marked `sent` with the medium's id after: a crash between the two leaves it `sending`, and
the next start sends it again with that said in its reason, since a notification that may arrive
twice is better than one that may never arrive. Failures that retrying can mend are retried with
a growing wait, up to MAX_ATTEMPTS; the reason of each is kept in the row and the event log."""

from __future__ import annotations

import logging
import threading
import time

from station.escalation import chain
from station.escalation.channels import Channel, ChannelError, Outgoing
from station.incidents import log_event
from station.storage import db as dbmod
from station.storage.writer import Writer
from station.wording import Wording

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
POLL_EVERY_S = 30.0          # a medium that holds replies (the SMS modem) is read this often
BACKOFF_S = (15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
MISSING = {
    "sms": "no SMS modem is configured ([sms] port)",
    "email": "no SMTP server is configured ([email] host)",
    "ntfy": "no ntfy server is configured ([push] ntfy_url)",
    "telegram": "no Telegram bot is configured ([push] telegram_token_file)",
}


class EscalationSender:
    def __init__(self, writer: Writer, clock, channels: dict[str, Channel]):
        self.writer = writer
        self.clock = clock
        self.channels = channels
        self.alive_at = time.monotonic()
        self._stop = threading.Event()
        self._wake = {name: threading.Event() for name in [*channels, "mesh"]}
        self._threads = [threading.Thread(target=self._run, args=(name,), name=f"notify-{name}", daemon=True)
                         for name in channels]
        self._threads.append(threading.Thread(target=self._watch, name="notify-watch", daemon=True))

    def start(self) -> "EscalationSender":
        at = self.clock.now()

        def recover(db):
            again = db.execute(
                "UPDATE notifications SET state='queued', reason='the station stopped while sending it: it may "
                "arrive twice', updated_at=? WHERE state='sending' AND channel != 'mesh'", (at,)).rowcount
            missing = list(MISSING)
            for name in self.channels:
                missing.remove(name)
            for name in missing:
                for nid, iid in db.execute("SELECT id, incident_id FROM notifications WHERE state='queued' AND "
                                           "channel=?", (name,)).fetchall():
                    self._failed(db, nid, iid, name, MISSING[name], at)
            return again
        again = self.writer.call(recover)
        if again:
            log.warning("%d notifications were being sent when the station stopped: sent again", again)
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for e in self._wake.values():
            e.set()
        for t in self._threads:
            t.join(3)
        for c in self.channels.values():
            c.close()

    def wake(self) -> None:
        for e in self._wake.values():
            e.set()

    def queued(self, db, ids: list[int]) -> None:
        """After a tick's commit: fail at once what no configured channel can carry, wake the rest."""
        at = self.clock.now()
        for nid, iid, channel in db.execute(
                f"SELECT id, incident_id, channel FROM notifications WHERE id IN ({','.join('?' * len(ids))}) "
                "AND state='queued'", ids).fetchall():
            if channel not in self.channels and channel in MISSING:
                self._failed(db, nid, iid, channel, MISSING[channel], at)
        self.wake()

    def _failed(self, db, nid: int, iid: int, channel: str, reason: str, at: float) -> None:
        db.execute("UPDATE notifications SET state='failed', reason=?, updated_at=? WHERE id=?", (reason[:300], at, nid))
        log_event(db, iid, at, "station", "notification failed",
                  Wording("{channel}: {reason}", channel=channel, reason=reason))

    # -- threads -------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Mesh notifications follow their receipt rows' delivery states."""
        reader = dbmod.connect(self.writer.path)
        try:
            while not self._stop.is_set():
                self.alive_at = time.monotonic()
                self._wake["mesh"].wait(1.0)
                self._wake["mesh"].clear()
                try:
                    if self.writer.unavailable is None and reader.execute(
                            "SELECT EXISTS(SELECT 1 FROM notifications n JOIN receipts r ON r.id = n.receipt_id "
                            "WHERE n.channel='mesh' AND n.state IN ('sending', 'sent') AND r.state NOT IN ('queued', "
                            "'sending') AND NOT (n.state='sent' AND r.state IN ('sent', 'relayed')))").fetchone()[0]:
                        self.writer.call(lambda db: chain.sync_mesh(db, self.clock.now()))
                except Exception:
                    log.exception("following mesh notifications failed; will retry")
        finally:
            reader.conn.close()

    def _run(self, name: str) -> None:
        channel = self.channels[name]
        polled = time.monotonic()
        reader = dbmod.connect(self.writer.path)
        try:
            while not self._stop.is_set():
                self._wake[name].wait(0.5 if not getattr(channel, "sweep", False) else 0.05)
                self._wake[name].clear()
                try:
                    while not self._stop.is_set() and self.writer.unavailable is None and self._one(reader, channel):
                        pass
                    poll = getattr(channel, "poll", None)
                    if poll is not None and (getattr(channel, "sweep", False) or
                                             time.monotonic() - polled >= POLL_EVERY_S):
                        channel.sweep, polled = False, time.monotonic()
                        poll()
                except Exception:
                    log.exception("sending %s notifications failed; will retry", name)
        finally:
            reader.conn.close()

    def _one(self, reader, channel: Channel) -> bool:
        """Send the oldest due notification of this channel; whether there was one."""
        now = self.clock.now()
        row = reader.execute("SELECT id, incident_id, responder, address, text, attempts FROM notifications "
                             "INDEXED BY notifications_queued WHERE channel=? AND state='queued' "
                             "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT 1",
                             (channel.name, now)).fetchone()
        if row is None:
            return False
        nid, iid, responder, address, text, attempts = row

        def claim(db):
            # Only if the chain did not stop meanwhile (the alert answered: it is `cancelled`).
            return db.execute("UPDATE notifications SET state='sending', claimed_at=?, attempts=attempts+1, "
                              "updated_at=? WHERE id=? AND state='queued'", (now, now, nid)).rowcount == 1
        if not self.writer.call(claim):
            return True
        message = Outgoing(nid, iid, responder, address, text, attempts + 1)
        failure: ChannelError | None = None
        try:
            external = channel.send(message)
        except ChannelError as e:
            failure = e
        except Exception as e:        # a bug in a channel must not stop the others, nor this one
            log.exception("the %s channel failed unexpectedly", channel.name)
            failure = ChannelError(f"unexpected error: {type(e).__name__}")
        if failure is not None:
            self.writer.call(lambda db: self._after_failure(db, message, channel.name, failure))
            return True
        at = self.clock.now()

        def sent(db):
            # The reason stays when it says this may be a second copy: the responder may ask.
            db.execute("UPDATE notifications SET state='sent', sent_at=?, external_id=?, updated_at=?, reason=CASE "
                       "WHEN reason LIKE '%may arrive twice' THEN reason END WHERE id=? AND state='sending'",
                       (at, external, at, nid))
            log_event(db, iid, at, "station", "notification sent",
                      Wording("{channel} to {responder} ({address})", channel=channel.name, responder=responder,
                              address=address))
        self.writer.call(sent)
        return True

    def _after_failure(self, db, m: Outgoing, channel: str, e: ChannelError) -> None:
        at = self.clock.now()
        if not e.retry or m.attempt >= MAX_ATTEMPTS:
            final = e.reason if not e.retry else f"{e.reason} (gave up after {m.attempt} attempts)"
            self._failed(db, m.id, m.incident_id, channel, final, at)
            return
        wait = e.wait_s if e.wait_s is not None else BACKOFF_S[min(m.attempt, len(BACKOFF_S)) - 1]
        db.execute("UPDATE notifications SET state='queued', reason=?, next_attempt_at=?, updated_at=? WHERE id=? "
                   "AND state='sending'", (e.reason[:300], at + wait, at, m.id))
        log_event(db, m.incident_id, at, "station", "notification retried",
                  Wording("{channel} to {responder}: {reason}; again in {s} s", channel=channel, responder=m.responder,
                          reason=e.reason, s=f"{wait:.0f}"))
