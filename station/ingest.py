"""From a received packet to committed rows: store the raw frame first, then what it means.

`Ingest.on_packet` is called on the meshtastic library's publishing thread (or its reader
thread for frames the library could not decode). It only timestamps and classifies the packet
and queues a writer job, so the library's single dispatch thread is never held up.

What a packet claiming a registered bracelet proves (station/trust.py) decides what it may do:
only a verified one opens or extends her alert, moves her position, reports her battery, answers
a receipt or makes her look alive; a cancel counts only sealed with her key. A cancel's PIN is
checked on a thread of its own (scrypt must not hold up the writer, and so every other alert),
and is never stored: the raw packet keeps the PIN's digits as asterisks.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import sqlite_utils
from meshtastic.protobuf import mesh_pb2

from station import incidents, pins, trust
from station.clock import StationClock
from station.decode import packets as dec
from station.radio import firmware
from station.storage import records
from station.storage.spool import Spool
from station.storage.writer import Writer
from station.wording import Wording

if TYPE_CHECKING:
    from station.receipts import MemoryReceipt

log = logging.getLogger(__name__)
BROADCAST = 0xFFFFFFFF
# Receipts to senders that are not registered bracelets (a visitor's SOS): a courtesy, never ahead of
# a wearer's, and at most this many an hour, so that a flood of made-up senders cannot fill the air.
STRANGER_RECEIPTS_PER_HOUR = 12
# A claim of a registered number that proves nothing is noted in the event log at most this often
# per number (a flood of them must not become a flood of evidence rows).
SPOOF_NOTE_EVERY_S = 600.0
# Changes queued for a database that takes none, before other traffic waits in the spool only:
# about 2 KB of memory each.
MAX_HELD_JOBS = 5000


@dataclass
class IngestCounters:
    packets: int = 0
    duplicates: int = 0
    bad_frames: int = 0
    problems: int = 0
    log_lines: int = 0
    unverified: int = 0          # packets claiming a registered bracelet that proved nothing
    pin_checks: int = 0
    held_alerts: int = 0         # alerts that arrived while the database took nothing
    spool_only: int = 0          # packets kept only in the spool (memory held was at its bound)
    dropped: int = 0             # packets neither queued nor spooled (the spool full): counted, gone
    replayed: int = 0            # packets stored from the spool


class Ingest:
    def __init__(self, writer: Writer, rules: dec.Rules, clock: StationClock, *, fold_window_s: float,
                 drill: bool = False, receipt_texts: dict[str, str] | None = None,
                 on_effects: Callable[[list[incidents.Effect]], None] | None = None,
                 own_node: Callable[[], int | None] = lambda: None,
                 office_channel: Callable[[int], bool] = lambda index: False,
                 routing_answer: Callable[..., bool] | None = None, pin_key: pins.PinKey | None = None,
                 spool: Spool | None = None,
                 on_held_alert: Callable[[mesh_pb2.MeshPacket, float], None] | None = None):
        self.writer = writer
        self.rules = rules
        self.clock = clock
        self.fold_window_s = fold_window_s
        self.drill = drill
        # Which incident changes send which text back to the wearer; None: no receipts. The duress
        # PIN gets the same text as a real cancel, so whoever forced it sees nothing unusual.
        self.receipt_for = None if receipt_texts is None else {
            "opened": receipt_texts["received"], "cancelled": receipt_texts["cancel"],
            "duress": receipt_texts["cancel"]}
        self.on_effects = on_effects or (lambda effects: None)
        self.own_node = own_node
        # Whether a channel index of the station's radio is the office's private primary channel.
        self.office_channel = office_channel
        # Inside the writer transaction: a routing answer (request id, sender, error name, time,
        # proven) for the receipts; True when it was one of ours.
        self.routing_answer = routing_answer or (lambda db, request_id, sender, error, at, proven: False)
        self.checks = PinChecks(self, pin_key)
        # What the radio handed over, kept in RAM until committed (storage/spool.py).
        self.spool = spool
        self.spool_hold = False      # records in it were never queued: replay before emptying it
        # An alert that arrived while the database takes nothing: the room must hear it now.
        self.on_held_alert = on_held_alert or (lambda packet, at: None)
        # Receipts sent from memory while the database was out: (sender, packet id) of the alert
        # -> receipts.MemoryReceipt; its receipt row is written as sent when the alert is.
        self.sent_from_memory: dict[tuple[int, int], MemoryReceipt] = {}
        # Every alert queued and not yet committed, and those of them already handed to the daemon
        # as held: a batch can fail with alerts in it that arrived while all was well.
        self.awaiting: dict[tuple[int, int], tuple[mesh_pb2.MeshPacket, float]] = {}
        self._held: set[tuple[int, int]] = set()
        self.counters = IngestCounters()
        self.on_stored: Callable[[mesh_pb2.MeshPacket], None] = lambda packet: None
        # A text that is not an alert or a cancel (inside the transaction): a responder's answer to
        # an escalation (station/escalation/service.py); an Effect when it acknowledged an alert.
        self.on_text: Callable[..., incidents.Effect | None] = lambda db, packet, text, at: None
        self.responder_key: Callable[[int], str | None] = lambda num: None     # a responder node's pinned key
        # Called after commit with each newly stored packet (benchmarks, future consumers).
        self.observer: Callable[[mesh_pb2.MeshPacket], None] | None = None

    @property
    def pin_key(self) -> pins.PinKey | None:
        return self.checks.pin_key

    def stop(self) -> None:
        self.checks.stop()

    # -- entry points (any thread; they only queue) --------------------------------------------
    def on_packet(self, packet: mesh_pb2.MeshPacket, problem: str | None = None, *, office: bool | None = None) -> None:
        """A packet heard: from the serial radio, or (`office` given: whether it was opened here
        with the office channel's key) through the MQTT uplink (radio/uplink.py)."""
        at = self.clock.now()
        result = dec.classify(packet, self.rules)
        cancels = result.of(dec.Cancel)
        stored = _redacted(packet, [c.pin for c in cancels]) if cancels else packet
        alert = bool(result.of(dec.Alert))
        # Whether it came on the office channel is the radio's word now, kept with the packet.
        if office is None:
            office = packet.HasField("decoded") and self.office_channel(packet.channel)
        end = self.spool.append(stored, at, alert=alert, office=office) if self.spool is not None else None
        if alert:
            self.awaiting[(getattr(packet, "from"), packet.id)] = (packet, at)
        if self.writer.unavailable is not None:
            if alert:
                self.hold(packet, at)
            elif self.writer.pending() > MAX_HELD_JOBS:
                # Memory stays bounded: the oldest traffic is in the spool, and is replayed from
                # there once the database takes changes again; alerts always stay queued too.
                if end is None:
                    self.counters.dropped += 1
                else:
                    self.spool_hold = True
                    self.counters.spool_only += 1
                return
        self.writer.submit(lambda db: self._store(db, packet, stored, result, at, problem, office=office),
                           on_commit=lambda out: self._committed(packet, out, end), name="packet")

    def hold(self, packet: mesh_pb2.MeshPacket, at: float) -> None:
        key = (getattr(packet, "from"), packet.id)
        if key in self._held:
            return
        self._held.add(key)
        self.counters.held_alerts += 1
        self.on_held_alert(packet, at)

    def hold_waiting(self) -> None:
        """The database refuses changes: every alert still waiting for its commit is held."""
        for packet, at in list(self.awaiting.values()):
            self.hold(packet, at)

    def replay_spool(self) -> int:
        """What the spool holds, through the writer again: at start-up (a restart while the disk
        was full or locked) and once the database takes changes again. Packets already stored are
        recognised by sender and packet id, and not counted as mesh duplicates."""
        if self.spool is None:
            return 0
        records = list(self.spool.records())
        self.spool_hold = False
        end = self.spool.size
        for packet, at, office in records:
            result = dec.classify(packet, self.rules)
            self.writer.submit(lambda db, p=packet, r=result, t=at, o=office:
                               self._store(db, p, p, r, t, None, office=o, replay=True),
                               on_commit=lambda out, p=packet: self._committed(p, out, end), name="replay")
        if records:
            log.warning("replaying %d packets kept in the spool %s", len(records), self.spool.path)
        return len(records)

    def on_bad_frame(self, raw: bytes, reason: str) -> None:
        at = self.clock.now()
        self.counters.bad_frames += 1
        self.writer.submit(lambda db: records.insert_reject(db, at, "radio", "corrupt frame", reason, raw),
                           name="bad-frame")

    def on_log_line(self, line: str) -> None:
        # The radio's debug console, or line noise: counted, never stored line by line.
        self.counters.log_lines += 1

    # -- inside the writer transaction ------------------------------------------------------------
    def _store(self, db: sqlite_utils.Database, p: mesh_pb2.MeshPacket, stored: mesh_pb2.MeshPacket,
               result: dec.Classified, at: float, problem: str | None, *, office: bool,
               replay: bool = False) -> tuple[list, list]:
        row, new = records.insert_packet(db, stored, at, decode=problem or "ok", count_duplicate=not replay)
        if not new:
            if not replay:
                self.counters.duplicates += 1
            return [], []
        if replay:
            self.counters.replayed += 1
        self.counters.packets += 1
        db.execute("SAVEPOINT decode")
        try:
            out = self._apply(db, p, result, at, row, office, problem)
            db.execute("RELEASE decode")
        except Exception as e:  # the raw packet stays stored; only its meaning is lost
            db.execute("ROLLBACK TO decode")
            db.execute("RELEASE decode")
            log.exception("could not apply packet %s from !%08x", p.id, getattr(p, "from"))
            records.set_packet_decode(db, row, f"error: {type(e).__name__}: {e}")
            self.counters.problems += 1
            return [], []
        return out

    def _apply(self, db: sqlite_utils.Database, p: mesh_pb2.MeshPacket, result: dec.Classified, at: float,
               row: int, office: bool, library_problem: str | None = None) -> tuple[list, list]:
        num = getattr(p, "from")
        live = not firmware.is_cache_replay(p)
        infos = result.of(dec.NodeInfo)
        names = (infos[-1].long_name, infos[-1].short_name) if infos else None
        v = trust.verdict(db, p, office, names=names)
        claim = v.registered and not v.proof.ok        # her number, no proof
        records.node_heard(db, p, at, live=live and not claim)
        effects: list[incidents.Effect] = []
        checks: list[tuple[incidents.CancelCheck, str]] = []
        notes = [*filter(None, [library_problem])]
        problems = result.of(dec.Problem)
        if problems:
            self.counters.problems += len(problems)
            notes += [pr.reason for pr in problems]
            for pr in problems:
                if pr.reason not in ("encrypted", "position without fix"):
                    records.insert_reject(db, at, f"packet:{result.port}", pr.reason, pr.detail)
        if not live:
            notes.append("replayed from the radio's cache")
        if claim and p.HasField("decoded"):
            self.counters.unverified += 1
            notes.append(f"claims registered bracelet !{num:08x}, proves nothing: {v.proof.reason}")
            self._note_spoof(db, num, at, v.proof.reason)
        for info in infos:
            self._node_info(db, num, info, v, at, notes)
        positions = result.of(dec.Position)
        for pos in positions:
            records.insert_position(db, num, pos, at, row, cached=not live, unverified=claim)
            if live:
                incidents.follow_position(db, num, pos, at, verified=v.trust == trust.REGISTERED)
        for t in result.of(dec.Telemetry):
            records.insert_telemetry(db, num, t, at, row, cached=not live, unverified=claim)
        for state in result.of(dec.SensorState):
            notes.append(f"sensor state {state.state}: not a press")
        alerts, cancels = result.of(dec.Alert), result.of(dec.Cancel)
        own = self.own_node()
        if (alerts or cancels) and p.to != BROADCAST and own is not None and p.to != own:
            # A direct message between two other nodes: their conversation, not a call to us.
            notes.append(f"addressed to !{p.to:08x}, not to the station")
            alerts, cancels = [], []
        for alert in alerts:
            effects.append(incidents.raise_alert(
                db, num, alert, at, packet_row=row, fold_window_s=self.fold_window_s, drill=self.drill,
                fix=positions[-1] if positions else None, verdict=v))
        for c in cancels:
            if v.proof.how != trust.KEY:
                notes.append("cancel not sealed with the bracelet's key: ignored")
                if v.registered and not claim:
                    self._note_unsealed_cancel(db, num, at)
                continue
            check = incidents.cancel_request(db, num, at)
            if check is not None:
                checks.append((check, c.pin))
        if live and (own is None or p.to in (own, BROADCAST)):
            for t in result.of(dec.Text):
                answered = self.on_text(db, p, t.text, at)
                if answered is not None:
                    effects.append(answered)
        if notes:
            records.set_packet_decode(db, row, "; ".join(notes))
        self._queue_receipts(db, effects, num, at, packet_id=p.id)
        routings = result.of(dec.Routing)
        proven = v.proof.ok or num == own
        if routings and not v.registered and self.responder_key(num):
            # A responder's node acknowledging an escalation message: proven as a bracelet's would be.
            proven = proven or trust.proof_of(p, self.responder_key(num), office).ok
        for r in routings:
            # Only the bracelet itself (proven) or the station's own radio answers for a receipt.
            self.routing_answer(db, r.request_id, num, r.error, at, proven)
        return effects, checks

    def _node_info(self, db, num: int, info: dec.NodeInfo, v: trust.Verdict, at: float, notes: list[str]) -> None:
        if not v.registered:
            previous = records.node_info(db, num, info)
            if previous:
                incidents.log_event(db, None, at, "station", "public key changed",
                                    Wording("{node} announced a different key", node=f"!{num:08x}"))
            if v.trust == trust.IMPOSTOR:
                db.execute("UPDATE nodes SET key_mismatch=1 WHERE num=?", (num,))
                incidents.log_event(db, None, at, "station", "impostor suspected",
                                    Wording("{node} announces a name that looks like a registered bracelet's",
                                            node=f"!{num:08x}"))
            return
        _, pinned = trust.pinned_key(db, num)
        if not v.proof.ok:
            # Noted above: names and keys from a claim change nothing. The hardware model only
            # feeds a warning (a stock T1000-E cannot raise an alert), so a first one is kept.
            db.execute("UPDATE nodes SET hw_model=? WHERE num=? AND hw_model IS NULL", (info.hw_model, num))
            return
        if info.public_key and info.public_key != pinned:
            # The radio drops such a NodeInfo from its NodeDB (NodeDB.cpp updateUser); so do we.
            notes.append("announces another key than the pinned one: ignored")
            self._note_spoof(db, num, at, "a node info with another key than the pinned one")
            return
        info = dec.NodeInfo(info.node_id, info.long_name, info.short_name, info.hw_model, info.role, None)
        records.node_info(db, num, info)

    def _note_spoof(self, db, num: int, at: float, reason: str) -> None:
        last = db.execute("SELECT spoofed_at FROM nodes WHERE num=?", (num,)).fetchone()
        db.execute("UPDATE nodes SET spoofed = spoofed + 1, spoofed_at=? WHERE num=?", (at, num))
        if not last or not last[0] or at - last[0] > SPOOF_NOTE_EVERY_S:
            incidents.log_event(db, None, at, "station", "impostor suspected",
                                Wording("a packet claims registered bracelet {node} and proves nothing: {reason}",
                                        node=f"!{num:08x}", reason=reason))

    def _note_unsealed_cancel(self, db, num: int, at: float) -> None:
        incidents.log_event(db, None, at, "wearer", "cancel ignored",
                            Wording("{node}: a cancel counts only as a direct message sealed with the bracelet's key",
                                    node=f"!{num:08x}"))

    def _queue_receipts(self, db, effects: list[incidents.Effect], num: int, at: float,
                        packet_id: int | None = None) -> None:
        if not self.receipt_for:
            return
        for e in effects:
            text = self.receipt_for.get(e.kind)
            if not text or e.trust in (trust.IMPOSTOR, trust.UNVERIFIED):
                continue        # a claim never reaches the real bracelet, nor an impostor
            memory = self.sent_from_memory.pop((num, packet_id), None) if e.kind == "opened" else None
            if memory is not None:
                # Sent (or being sent) while the database was out: the row records it, and its ACK
                # finds it.
                with memory.lock:
                    if memory.packet_id is not None:
                        records.queue_receipt(db, e.incident_id, num, e.kind, text, at, priority=0,
                                              sent=(memory.packet_id, memory.sent_at))
                    else:
                        memory.row = records.queue_receipt(db, e.incident_id, num, e.kind, text, at, priority=0,
                                                           sending=True)
                continue
            if e.trust == trust.UNREGISTERED and records.receipts_to_strangers(db, at - 3600) >= \
                    STRANGER_RECEIPTS_PER_HOUR:
                incidents.log_event(db, e.incident_id, at, "station", "receipt skipped",
                                    Wording("more than {n} receipts to unregistered senders this hour",
                                            n=STRANGER_RECEIPTS_PER_HOUR))
                continue
            # A duress's receipt is a cancel's in every respect, its kind included: the same spacing
            # and "sent moments ago" rules then apply to both (receipts.py).
            kind = "cancelled" if e.kind == "duress" else e.kind
            records.queue_receipt(db, e.incident_id, num, kind, text, at,
                                  priority=0 if e.trust == trust.REGISTERED else 1)

    def apply_checked(self, db, check: incidents.CancelCheck, outcome: str, at: float) -> list[incidents.Effect]:
        e = incidents.apply_cancel(db, check, outcome, at)
        effects = [e] if e is not None else []
        self._queue_receipts(db, effects, check.node_num, at)
        return effects

    # -- after commit --------------------------------------------------------------------------
    def _committed(self, packet: mesh_pb2.MeshPacket, out: tuple[list, list], end: int | None = None) -> None:
        effects, checks = out
        if end is not None and not self.spool_hold:
            self.spool.empty_if(end)
        key = (getattr(packet, "from"), packet.id)
        self.awaiting.pop(key, None)
        self._held.discard(key)
        self.on_stored(packet)
        if self.observer is not None:
            self.observer(packet)
        for check, pin in checks:
            self.checks.put(check, pin)
        if effects:
            self.on_effects(effects)


def _redacted(packet: mesh_pb2.MeshPacket, secrets: list[str]) -> mesh_pb2.MeshPacket:
    """The packet as stored: a PIN's digits as asterisks. Whoever reads the database later (a
    seizer, a backup) must not find the PINs the hashes protect."""
    copy = mesh_pb2.MeshPacket()
    copy.CopyFrom(packet)
    payload = bytes(copy.decoded.payload)
    for secret in secrets:
        payload = payload.replace(secret.encode(), b"*" * len(secret))
    copy.decoded.payload = payload
    return copy


class PinChecks:
    """Checks cancels' PINs on a thread of its own, in arrival order, and writes each result back
    through the writer. A PIN waits here only in memory: if the station stops before its check,
    the cancel is lost (the wearer gets no receipt and sends it again), never stored in clear."""

    def __init__(self, ingest: "Ingest", pin_key: pins.PinKey | None):
        self.ingest = ingest
        self.pin_key = pin_key
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._in_flight = 0       # put and not yet handed to the writer

    def put(self, check: incidents.CancelCheck, pin: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pin-checks", daemon=True)
                self._thread.start()
            self._in_flight += 1
        self._queue.put((check, pin))

    def pending(self) -> int:
        """Cancels whose result the writer has not been given yet."""
        with self._lock:
            return self._in_flight

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(5)

    def _run(self) -> None:
        ingest = self.ingest
        while True:
            item = self._queue.get()
            if item is None:
                return
            check, pin = item
            try:
                outcome = incidents.check_pins(check, pin, self.pin_key)
                ingest.counters.pin_checks += 1
                at = ingest.clock.now()
                ingest.writer.submit(lambda db, c=check, o=outcome, t=at: ingest.apply_checked(db, c, o, t),
                                     on_commit=lambda effects: effects and ingest.on_effects(effects), name="cancel")
            except Exception:
                log.exception("PIN check failed")
            finally:
                with self._lock:
                    self._in_flight -= 1
