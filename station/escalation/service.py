"""The escalation as the daemon runs it: the policy, the channels and their sender, the tick the
monitor thread calls, and the replies that come back over the mesh and by SMS."""

from __future__ import annotations

import logging
import threading

from meshtastic.protobuf import mesh_pb2

from station import incidents, trust
from station.escalation import chain
from station.escalation import channels as channelmod
from station.escalation.policy import Policy
from station.escalation.sender import EscalationSender
from station.incidents import log_event
from station.logs import event
from station.wording import Wording

log = logging.getLogger(__name__)


class Escalation:
    def __init__(self, cfg, writer, clock, *, on_acknowledged=lambda: None, wake_mesh=lambda: None):
        self.policy: Policy = cfg.escalation()
        self.writer = writer
        self.clock = clock
        self.on_acknowledged = on_acknowledged
        self.wake_mesh = wake_mesh
        self.channels: dict = {}
        self.problems: dict[str, str] = {}
        self.sender: EscalationSender | None = None
        self._lock = threading.Lock()
        self.ticks = 0
        if self.policy.active:
            self._build(cfg)

    def _build(self, cfg) -> None:
        wanted = {c for s in self.policy.steps for c in s.channels} | {"mesh", "sms", "email", "ntfy", "telegram"}
        try:
            built = channelmod.build(cfg, on_reply=self.sms_reply, on_delivered=self.sms_delivered)
        except channelmod.ChannelError as e:
            # One channel's secret unreadable: the others still go; its messages fail with the reason.
            event(log, "escalation.channel_unusable", logging.ERROR, f"an escalation channel cannot start: {e.reason}")
            self.problems["config"] = e.reason
            built = {}
        self.channels = {k: v for k, v in built.items() if k in wanted}
        for step in self.policy.steps:
            for c in step.channels:
                if c != "mesh" and c not in self.channels:
                    self.problems.setdefault(c, "not configured")

    @property
    def active(self) -> bool:
        return self.policy.active

    def start(self) -> "Escalation":
        if self.active:
            self.sender = EscalationSender(self.writer, self.clock, self.channels).start()
            log.info("escalation on: %d responders, %d steps, channels %s", len(self.policy.responders),
                     len(self.policy.steps), ", ".join(["mesh", *self.channels]))
        return self

    def stop(self) -> None:
        if self.sender is not None:
            self.sender.stop()

    def tick(self, reader) -> int:
        """From the monitor thread: whatever is due, in one transaction. Returns messages queued."""
        if not self.active:
            return 0
        now = self.clock.now()
        if not chain.pending(reader, now):
            return 0
        self.ticks += 1

        def job(db):
            ids = chain.tick(db, now, self.policy)
            if ids:
                self.sender.queued(db, ids)
            return ids
        ids = self.writer.call(job)
        if ids:
            self.wake_mesh()
            self.sender.wake()
        return len(ids)

    def mesh_contacts(self) -> list[tuple[int, str, str]]:
        """(node, name, key) of each responder's node: the radio keeps them as it keeps bracelets."""
        return [(r.node, r.name, r.public_key) for r in self.policy.responders if r.node is not None]

    def responder_key(self, num: int) -> str | None:
        r = self.policy.by_node(num) if self.active else None
        return r.public_key if r is not None else None

    # -- replies -------------------------------------------------------------------------------
    def mesh_reply(self, db, packet: mesh_pb2.MeshPacket, text: str, at: float) -> incidents.Effect | None:
        """A text from a responder's node (inside the ingest transaction). It counts only sealed
        with her node's pinned key: anyone with the channel key can send `ACK 17` under her number."""
        if not self.active:
            return None
        num = getattr(packet, "from")
        responder = self.policy.by_node(num)
        if responder is None:
            return None
        proof = trust.proof_of(packet, responder.public_key, False)
        if proof.how != trust.KEY:
            log_event(db, None, at, "station", "escalation answer ignored",
                      Wording("\"{text}\" under {name}'s node {node}: {reason}", text=text[:40], name=responder.name,
                              node=f"!{num:08x}", reason=proof.reason))
            return None
        effect = chain.answer(db, responder, "mesh", text, at, self.policy)
        if effect is not None:
            self.on_acknowledged()
        return effect

    def sms_reply(self, phone: str, text: str) -> None:
        """An SMS from a phone (the modem's thread). A sender number can be forged on some networks,
        so the reply must carry the alert's reference letters as well as come from her number."""
        responder = self.policy.by_phone(phone)
        at = self.clock.now()
        if responder is None:
            self.writer.submit(lambda db: log_event(db, None, at, "station", "SMS ignored",
                                                    Wording("from {phone}, not a responder's number", phone=phone)),
                               name="sms-reply")
            return

        def job(db):
            if chain.answer(db, responder, "sms", text, at, self.policy) is not None:
                self.on_acknowledged()
        self.writer.submit(job, name="sms-reply")

    def sms_delivered(self, reference: str, ok: bool, detail: str) -> None:
        at = self.clock.now()

        def job(db):
            # A modem numbers its messages 0-255: the report is for the newest sent under that number.
            db.execute("UPDATE notifications SET state=?, reason=?, updated_at=? WHERE id=(SELECT MAX(id) FROM "
                       "notifications WHERE channel='sms' AND external_id=? AND state='sent')",
                       ("delivered" if ok else "failed", None if ok else detail[:300], at, reference))
        self.writer.submit(job, name="sms-report")

    def status(self, reader) -> dict:
        if not self.active:
            return {"enabled": False}
        rows = dict(reader.execute("SELECT state, COUNT(*) FROM escalations GROUP BY state").fetchall())
        queued = reader.execute("SELECT COUNT(*) FROM notifications WHERE state IN ('queued', 'sending')").fetchone()[0]
        return {"enabled": True, "running": rows.get(chain.RUNNING, 0), "queued": queued,
                "channels": ["mesh", *sorted(self.channels)], "problems": self.problems}
