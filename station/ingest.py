"""From a received packet to committed rows: store the raw frame first, then what it means.

`Ingest.on_packet` is called on the meshtastic library's publishing thread (or its reader
thread for frames the library could not decode). It only timestamps the packet and queues a
writer job, so the library's single dispatch thread is never held up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import sqlite_utils
from meshtastic.protobuf import mesh_pb2

from station import incidents, pins, registry
from station.clock import StationClock
from station.decode import packets as dec
from station.radio import firmware
from station.storage import records
from station.storage.writer import Writer

log = logging.getLogger(__name__)
BROADCAST = 0xFFFFFFFF


@dataclass
class IngestCounters:
    packets: int = 0
    duplicates: int = 0
    bad_frames: int = 0
    problems: int = 0
    log_lines: int = 0


class Ingest:
    def __init__(self, writer: Writer, rules: dec.Rules, clock: StationClock, *, fold_window_s: float,
                 drill: bool = False, receipt_texts: dict[str, str] | None = None,
                 on_effects: Callable[[list[incidents.Effect]], None] | None = None,
                 own_node: Callable[[], int | None] = lambda: None,
                 routing_answer: Callable[..., bool] | None = None, pin_key: pins.PinKey | None = None):
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
        # Inside the writer transaction: a routing answer (request id, sender, error name, time)
        # for the receipts; True when it was one of ours.
        self.routing_answer = routing_answer or (lambda db, request_id, sender, error, at: False)
        # PIN hashes are keyed with it (station/pins.py); without it no cancel matches.
        self.pin_key = pin_key
        self.counters = IngestCounters()
        # Called after commit with each newly stored packet (benchmarks, future consumers).
        self.observer: Callable[[mesh_pb2.MeshPacket], None] | None = None

    # -- entry points (any thread; they only queue) --------------------------------------------
    def on_packet(self, packet: mesh_pb2.MeshPacket, problem: str | None = None) -> None:
        at = self.clock.now()
        self.writer.submit(lambda db: self._store(db, packet, at, problem),
                           on_commit=lambda effects: self._committed(packet, effects), name="packet")

    def on_bad_frame(self, raw: bytes, reason: str) -> None:
        at = self.clock.now()
        self.counters.bad_frames += 1
        self.writer.submit(lambda db: records.insert_reject(db, at, "radio", "corrupt frame", reason, raw),
                           name="bad-frame")

    def on_log_line(self, line: str) -> None:
        # The radio's debug console, or line noise: counted, never stored line by line.
        self.counters.log_lines += 1

    # -- inside the writer transaction ------------------------------------------------------------
    def _store(self, db: sqlite_utils.Database, p: mesh_pb2.MeshPacket, at: float,
               problem: str | None) -> list[incidents.Effect]:
        row, new = records.insert_packet(db, p, at, decode=problem or "ok")
        if not new:
            self.counters.duplicates += 1
            return []
        self.counters.packets += 1
        live = not firmware.is_cache_replay(p)
        records.node_heard(db, p, at, live=live)
        db.execute("SAVEPOINT decode")
        try:
            effects = self._apply(db, p, at, row, problem, live)
            db.execute("RELEASE decode")
        except Exception as e:  # the raw packet stays stored; only its meaning is lost
            db.execute("ROLLBACK TO decode")
            db.execute("RELEASE decode")
            log.exception("could not apply packet %s from !%08x", p.id, getattr(p, "from"))
            records.set_packet_decode(db, row, f"error: {type(e).__name__}: {e}")
            self.counters.problems += 1
            return []
        return effects

    def _apply(self, db: sqlite_utils.Database, p: mesh_pb2.MeshPacket, at: float, row: int,
               library_problem: str | None = None, live: bool = True) -> list:
        num = getattr(p, "from")
        result = dec.classify(p, self.rules)
        effects: list[incidents.Effect] = []
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
        for info in result.of(dec.NodeInfo):
            previous = records.node_info(db, num, info)
            if info.public_key and registry.pin_key_if_unpinned(db, num, info.public_key, at):
                incidents.log_event(db, None, at, "station", "key pinned", f"!{num:08x}")
            if previous:
                incidents.log_event(db, None, at, "station", "public key changed",
                                    f"!{num:08x} announced a different key")
            if registry.trust_of(db, num) == registry.IMPOSTOR:
                db.execute("UPDATE nodes SET key_mismatch=1 WHERE num=?", (num,))
                incidents.log_event(db, None, at, "station", "impostor suspected",
                                    f"!{num:08x} announces a registered bracelet's name or another key")
        positions = result.of(dec.Position)
        for pos in positions:
            records.insert_position(db, num, pos, at, row, cached=not live)
            if live:
                incidents.follow_position(db, num, pos, at)
        for t in result.of(dec.Telemetry):
            records.insert_telemetry(db, num, t, at, row, cached=not live)
        for state in result.of(dec.SensorState):
            notes.append(f"sensor state {state.state}: not a press")
        alerts, cancels = result.of(dec.Alert), result.of(dec.Cancel)
        own = self.own_node()
        if (alerts or cancels) and p.to != BROADCAST and own is not None and p.to != own:
            # A direct message between two other nodes: their conversation, not a call to us.
            notes.append(f"addressed to !{p.to:08x}, not to the station")
            alerts, cancels = [], []
        if notes:
            records.set_packet_decode(db, row, "; ".join(notes))
        for alert in alerts:
            effects.append(incidents.raise_alert(
                db, num, alert, at, packet_row=row, fold_window_s=self.fold_window_s, drill=self.drill,
                fix=positions[-1] if positions else None))
        for c in cancels:
            e = incidents.cancel(db, num, c, at, self.pin_key)
            if e is not None:
                effects.append(e)
        if self.receipt_for:
            for e in effects:
                text = self.receipt_for.get(e.kind)
                if text and e.trust != registry.IMPOSTOR:
                    records.queue_receipt(db, e.incident_id, num, e.kind, text, at)
        for r in result.of(dec.Routing):
            self.routing_answer(db, r.request_id, num, r.error, at)
        return effects

    # -- after commit --------------------------------------------------------------------------
    def _committed(self, packet: mesh_pb2.MeshPacket, effects: list[incidents.Effect]) -> None:
        if self.observer is not None:
            self.observer(packet)
        if effects:
            self.on_effects(effects)
