"""The station daemon: wires radio, storage, GPS, indicators and receipts together, and talks to
systemd (READY once the database and radio are up, WATCHDOG only while the radio supervisor
and the writer are alive, STOPPING on the way out)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

from station import __version__, incidents, registry, retention, trust
from station.pins import PinKey, PinPolicy, configured_key_path
from station.clock import StationClock
from station.config import Config
from station.decode.packets import Position, Rules
from station.escalation.service import Escalation
from station.network.service import Network
from station.watch.service import Watch
from station.gps import GpsReader, GpsTracker
from station.indicators import alarm_level, make_indicators
from station.logs import event
from station.ingest import Ingest
from station.radio.link import LinkSettings, LinkState, RadioLink
from station.radio import bracelet_check, configure
from station.radio.jobs import JobRunner
from station.radio.finder import RadioFinder
from station.radio.ports import AUTO_RADIO_PATH, parse_tcp
from station.radio.profile import MeshProfile
from station.radio.sim import SimRadio
from station import receipts, runtime
from station.radio.info import RadioInfo
from station.radio.keeper import Bracelet as KeptBracelet
from station.radio.keeper import RadioKeeper, needed
from station.receipts import ReceiptSender
from station.sdnotify import Notifier
from station.storage import db as dbmod
from station.storage import records
from station.storage.lock import DaemonLock
from station.storage import timebase
from station.storage.spool import Spool
from station.storage.writer import Writer
from station.wording import Wording

log = logging.getLogger(__name__)

STATUS_EVERY_S = 2.0
KEY_CHECK_EVERY_S = 30.0             # new registrations reach the radio's NodeDB this soon
STALE_AFTER_S = 15.0                  # a worker that has not looped for this long is hung
RETENTION_FIRST_S = 300.0             # the first purge after start (not in the way of start-up)
RETENTION_EVERY_S = 86400.0


class Station:
    def __init__(self, cfg: Config, *, pin_factory=None, sim_speed: float = 1.0,
                 corpus_dir: Path | None = None):
        self.cfg = cfg
        self.pin_factory = pin_factory
        self.sim_speed = sim_speed
        self.corpus_dir = corpus_dir
        self.started_at = time.time()
        self.sim: SimRadio | None = None
        self.gps: GpsReader | None = None
        self.gps_tracker: GpsTracker | None = None
        self.relay = None
        self.network: Network | None = None
        self.uplink = None
        self._uplink_problem = ""
        self.link: RadioLink | None = None
        self._last_radio: RadioInfo | None = None     # what the last run's handshake said
        self._stop = threading.Event()
        self._wake_monitor = threading.Event()
        self._keeper_lock = threading.Lock()
        self._silenced = False
        self._newest_incident = 0
        self._alarm_counts = (0, 0, 0)     # open, duress, acknowledged: the last the database said
        self._held_seen = 0
        self._held: dict[tuple[int, int], float] = {}     # alerts not yet stored: (sender, id) -> when
        self._last_gps_store = 0.0
        self.stale_after_s = STALE_AFTER_S
        self.key_check_every_s = KEY_CHECK_EVERY_S
        self.status_every_s = STATUS_EVERY_S
        self.retention_first_s = RETENTION_FIRST_S
        self.retention_every_s = RETENTION_EVERY_S
        # Where `auto` looks for a radio besides USB ids (tests add a glob for their ptys).
        self.auto_candidates: tuple[str, ...] = (AUTO_RADIO_PATH,)
        self.auto_globs: tuple[str, ...] = ()
        self.look_for_radio_every_s = 2.0
        self.system_time = time.time      # tests set the wall clock back and forth through this
        self.monotonic = time.monotonic   # and move both ahead together (time passing, no step)

    # -- start and stop ----------------------------------------------------------------------
    def start(self) -> "Station":
        self._lock = DaemonLock(self.cfg.database_path).acquire()
        try:
            return self._start()
        except BaseException:
            self._lock.release()
            raise

    def _start(self) -> "Station":
        cfg = self.cfg
        self.writer = Writer(cfg.database_path, cfg.storage["batch_max"],
                             cfg.storage["commit_window_ms"] / 1000).start()
        if self.writer.db_check != "ok":
            log.error("database quick_check reports problems: %s", self.writer.db_check)
        # A step of the clock wakes the monitor, which moves this run's timers before taking it.
        self.clock = StationClock(cfg.gps["clock_margin_s"], system_time=self.system_time,
                                  monotonic=self.monotonic, on_step=lambda step: self._wake_monitor.set())
        self.pin_key = self._pin_key()
        behind = self.writer.call(lambda db: timebase.reanchor_after_downtime(db, self.clock.now()))
        if behind:
            event(log, "clock.behind_database", logging.ERROR, f"the clock reads {-behind[0]:.0f} s before the "
                  f"database's last record; {behind[1]} pending deadlines moved with it", step_s=round(behind[0]),
                  moved=behind[1])
        configured = cfg.radio["port"]
        self.finder = None if configured == "sim" or parse_tcp(configured) else \
            RadioFinder(configured, candidates=self.auto_candidates, globs=self.auto_globs)
        port = configured if self.finder is None else (self.finder.find() or configured)
        seen = self._real_radio_seen()
        hears_uplink = cfg.uplink["enabled"]
        if configured == "sim" or (configured == "auto" and port == "auto" and not seen and not hears_uplink):
            self.sim = SimRadio(cfg.radio["scenario"], speed=self.sim_speed, corpus_dir=self.corpus_dir).start()
            port = self.sim.port
            log.warning("no radio configured or plugged in: running on the VIRTUAL radio (scenario %s); "
                        "its alerts are drills%s", cfg.radio["scenario"],
                        "; a radio plugged in later is taken at once" if configured == "auto" else "")
        elif port == "auto" and hears_uplink and not seen:
            # Real alerts come through the uplink: demo drills must never mix with them.
            log.warning("no radio plugged in: hearing the mesh through the MQTT uplink only (receipts to the wearer "
                        "wait for a radio); the virtual radio is not started")
        elif port == "auto":
            # This database has heard a real radio: demo drills must never mix with its alerts.
            log.warning("no radio plugged in; this database has seen a real radio (%s), so the virtual radio is "
                        "not started: waiting for the radio", seen)
        rc = cfg.receipts
        self.spool = Spool(cfg.database_path)
        self.ingest = Ingest(
            self.writer, Rules(tuple(cfg.alerts["keywords"]), tuple(cfg.alerts["cancel_keywords"]),
                                 (cfg.watch["checkin_word"],)), self.clock,
            fold_window_s=cfg.alerts["fold_window_s"], drill=self.sim is not None,
            receipt_texts={"received": rc["received_text"], "cancel": rc["cancel_text"]} if rc["enabled"] else None,
            on_effects=self._on_effects, own_node=self._own_node, office_channel=self._office_channel,
            routing_answer=lambda db, *answer: self.receipts.answer_in_tx(db, *answer), pin_key=self.pin_key,
            spool=self.spool, on_held_alert=self._held_alert)
        self.ingest.on_stored = lambda p: self._held.pop((getattr(p, "from"), p.id), None)
        got = self.writer.call(lambda db: records.get_state(db, "radio_info"))
        self._last_radio = RadioInfo.from_state(got[0]) if got else None
        # What a restart found in the spool (the disk was full or locked when the last daemon
        # stopped): stored before the radio gives anything new.
        self.ingest.replay_spool()
        self.indicators = make_indicators(cfg.gpio, self.button_ack, self.button_silence, self.pin_factory)
        self.link = RadioLink(port, self.ingest, LinkSettings.from_config(cfg.radio), on_state=self._on_link_state,
                              on_radio_info=self._on_radio_info,
                              on_refusal=lambda *refusal: self.receipts.radio_refused(*refusal),
                              finder=None if self.sim is not None else self.finder)
        self.receipts = ReceiptSender(
            self.writer, self.link, self.clock,
            receipts.Settings(rc["min_interval_s"], rc["ttl_s"], rc["ack_timeout_s"], rc["max_attempts"],
                              rc["retry_after_s"]),
            on_followup=self._receipt_followup)
        self.keeper = RadioKeeper(self.link, self._registered_bracelets, self._radio_event)
        self.escalation = Escalation(cfg, self.writer, self.clock, on_acknowledged=self._wake_monitor.set,
                                     wake_mesh=self.receipts.wake)
        self.uplink = self._start_uplink()
        self.watch = Watch(cfg, self.writer, self.clock, listening=self._listening,
                           drill=self.sim is not None, on_effects=self._on_effects, monotonic=self.monotonic)
        self.ingest.on_text = self._on_text
        self.ingest.responder_key = self.escalation.responder_key
        if cfg.gps["port"]:
            self.gps_tracker = GpsTracker(self.clock)
            self.gps = GpsReader(cfg.gps["port"], cfg.gps["baud"], self.gps_tracker, self._on_gps_fix).start()
        self._reader = dbmod.connect(cfg.database_path)
        self._keeper_reader = dbmod.connect(cfg.database_path)
        self.watch.restore(self._reader)
        # The network first: its triggers queue the alerts stored from now on, and the relay asks it
        # for the hub's claim before a post leaves.
        self.network = Network(cfg, self.writer, self.clock, on_acknowledged=self._wake_monitor.set,
                               wake_relay=lambda: self.relay.wake() if self.relay else None).start()
        self.relay = None
        if cfg.relay["enabled"] and cfg.lists.get("destinations"):
            from station.relay.service import Relay
            self.relay = Relay(cfg, self.writer, self.clock, on_internet=self.indicators.internet,
                               claim_gate=self.network.gate if self.network.enabled else None).start()
        self.jobs = JobRunner(self._reader, self.writer, {
            "configure": self._job_configure,
            "lend": lambda args, by: {"ok": self.link.lend(min(float(args.get("seconds", 60)), 900))},
            "take_back": self._job_take_back,
            "bracelet_check": self._job_bracelet_check})
        self.jobs.abandon_running()
        self.purger = retention.Purger(self.writer, retention.Policy.from_config(cfg), self.clock.now)
        self.link.start()
        self.receipts.start()
        self.escalation.start()
        self._monitor = threading.Thread(target=self._monitor_loop, name="station-monitor", daemon=True)
        self._monitor.start()
        return self

    def _start_uplink(self):
        if not self.cfg.uplink["enabled"]:
            return None
        from station.radio.uplink import Uplink, UplinkError
        try:
            return Uplink(self.cfg, self.ingest.on_packet).start()
        except UplinkError as e:
            event(log, "uplink.not_started", logging.ERROR, f"the MQTT uplink cannot start: {e}", reason=str(e))
            self._uplink_problem = str(e)
            return None

    def _listening(self) -> bool:
        """Whether the mesh reaches the station now: its radio, or the gateways' uplink."""
        return self.link.state.status == "connected" or bool(self.uplink and self.uplink.listening)

    def _radio_info(self) -> RadioInfo | None:
        """The radio's handshake, or until the link has one (the spool replayed at start), the
        last run's: a press replayed from the spool is judged on the same office channel."""
        if self.link is not None and self.link.radio_info is not None:
            return self.link.radio_info
        return self._last_radio

    def _own_node(self) -> int | None:
        if self.link is not None and self.link.state.node_num:
            return self.link.state.node_num
        info = self._last_radio
        try:
            return int(info.node.lstrip("!"), 16) if info is not None and info.node else None
        except ValueError:
            return None

    def _office_channel(self, index: int) -> bool:
        info = self._radio_info()
        return info is not None and info.office_channel(index)

    def _pin_key(self) -> PinKey:
        """The PIN key (drawn on first start); PIN hashes from before it are keyed now."""
        key = PinPolicy.of(self.cfg).key
        at = self.clock.now()

        def job(db):
            keyed = registry.key_pin_hashes(db, key)
            if keyed:
                incidents.log_event(db, None, at, "station", "PIN hashes keyed",
                                    Wording("{n} PIN hashes keyed with the station's PIN key", n=keyed))
            others = registry.pins_under_other_keys(db, key)
            if others:
                log.error("the PINs of %d bracelets were set with another PIN key than %s: their cancels "
                          "cannot be checked; copy the old pin.key back or set those PINs again",
                          len(others), configured_key_path(self.cfg))
        self.writer.submit(job, name="pin-keys")
        return key

    def _real_radio_seen(self) -> str | None:
        """Where this database last heard a real radio (its handshake), or None."""
        conn = dbmod.connect(self.cfg.database_path)
        try:
            got = conn.execute("SELECT value FROM station_state WHERE key='real_radio_seen'").fetchone()
        except Exception:
            return None
        finally:
            conn.conn.close()
        return json.loads(got[0]).get("port") if got else None

    def _look_for_radio(self) -> None:
        """On the virtual radio with `auto`: a real radio plugged in now is taken at once, and the
        virtual one (and its drills) stopped."""
        if self.sim is None or self.finder is None:
            return
        found = self.finder.find()
        if found is None or found == "auto":
            return
        event(log, "radio.plugged_in", logging.WARNING, f"a radio at {found}: leaving the virtual radio", port=found)
        sim, self.sim = self.sim, None
        self.ingest.drill = False
        self.link.retarget(found, self.finder)
        sim.stop()

    def _take_clock_step(self) -> None:
        """The clock stepped (NTP or GPS set it, someone ran `date`): every timestamp this run wrote
        moves by the step, then the clock takes it, so that no timer fires early or late."""
        self._write_status("running")       # the console and the commands stamp on this clock meanwhile
        try:
            taken = timebase.take_step(self.clock, self.writer)
        except Exception as e:          # the database is out: the clock waits, timers run on
            log.warning("a clock step waits for the database: %s", e)
            return
        self._write_status("running")
        if taken:
            self.watch.clock_stepped(taken[0])
            event(log, "clock.stepped", logging.WARNING, f"the clock was set {taken[0]:+.0f} s; {taken[1]} times "
                  "of this run moved with it", step_s=round(taken[0], 1), moved=taken[1])

    def _on_text(self, db, packet, text: str, at: float):
        """A text to the station or the channel (inside the ingest transaction): a wearer's
        check-in, or a responder's answer to an escalation."""
        if self.watch.on_text(db, packet, text, at):
            return None
        return self.escalation.mesh_reply(db, packet, text, at)

    def _held_alert(self, packet, at: float) -> None:
        """An alert the database cannot take now (disk full, locked): the room hears it at once,
        and a verified wearer gets her receipt from memory; both are reconciled when it is stored."""
        num, pid = getattr(packet, "from"), packet.id
        self._held[(num, pid)] = at
        event(log, "alert.held", logging.ERROR, "alert received while the database is unavailable: it waits in "
              "memory and in the spool", node=f"!{num:08x}", why=(self.writer.unavailable or ("?",))[0])
        self._wake_monitor.set()
        rc = self.cfg.receipts
        if not rc["enabled"] or (num, pid) in self.ingest.sent_from_memory:
            return
        try:
            pinned = {b.num: b.key_b64 for b in self._registered_bracelets()}
        except Exception as e:
            log.error("no receipt from memory: the registry cannot be read either (%s); the alarm rings", e)
            return
        info = self.link.radio_info
        proof = trust.proof_of(packet, pinned.get(num), info is not None and info.office_channel(packet.channel))
        if num in pinned and proof.ok:
            memory = receipts.MemoryReceipt(num, rc["received_text"])
            self.ingest.sent_from_memory[(num, pid)] = memory
            self.receipts.send_from_memory(memory)

    def stop(self) -> None:
        self._stop.set()
        self._wake_monitor.set()
        self.link.stop()
        self.ingest.stop()
        self.receipts.stop()
        self.escalation.stop()
        if self.relay:
            self.relay.stop()
        if self.network is not None:
            self.network.stop()
        if self.uplink is not None:
            self.uplink.stop()
        if self.gps:
            self.gps.stop()
        self._monitor.join(3)
        self._write_status("stopped")
        self.writer.stop()
        kept = self.spool.count() if self.spool.size else 0
        if kept or self.writer.lost_at_stop:
            event(log, "storage.held_at_stop", logging.ERROR,
                  f"stopping with {self.writer.lost_at_stop} changes the database did not take; {kept} packets are "
                  f"kept in the spool {self.spool.path} and stored at the next start (a reboot loses them)",
                  lost_changes=self.writer.lost_at_stop, spooled=kept)
        self.spool.close()
        self.indicators.close()
        if self.sim:
            self.sim.stop()
        self._reader.conn.close()
        with self._keeper_lock:
            self._keeper_reader.conn.close()
        self._lock.release()

    def restart_relay(self) -> None:
        """A reload changed the destinations or the relay's settings: the relay starts again on
        them (rows in the outbox wait meanwhile; a row caught sending is handled as after a crash)."""
        old = self.relay
        if old is not None:
            old.stop()
        self.relay = None
        if self.cfg.relay["enabled"] and self.cfg.lists.get("destinations"):
            from station.relay.service import Relay
            self.relay = Relay(self.cfg, self.writer, self.clock, on_internet=self.indicators.internet,
                               claim_gate=self.network.gate if self.network.enabled else None).start()

    def apply_watch(self, cfg: Config) -> None:
        """[watch] live: the next sweep uses it, and the decoder knows a new check-in word."""
        from station.watch.rules import Defaults
        self.watch.defaults = Defaults.of(cfg)
        self.ingest.rules = dataclasses.replace(self.ingest.rules, checkin_words=(cfg.watch["checkin_word"],))
        self.watch.wake()

    def apply_receipts(self, rc: dict) -> None:
        self.ingest.receipt_for = None if not rc["enabled"] else {
            "opened": rc["received_text"], "cancelled": rc["cancel_text"], "duress": rc["cancel_text"]}
        self.receipts.settings = receipts.Settings(rc["min_interval_s"], rc["ttl_s"], rc["ack_timeout_s"],
                                                   rc["max_attempts"], rc["retry_after_s"])

    def healthy(self) -> tuple[bool, str]:
        now = time.monotonic()
        grace = self.stale_after_s + self.cfg.radio["handshake_timeout_s"]
        if not self.writer.is_alive() or now - self.writer.alive_at > self.stale_after_s:
            return False, "database writer is not running"
        if not self.link.is_alive() or now - self.link.alive_at > grace:
            return False, "radio supervisor is not running"
        if self.relay and not self.relay.worker.is_alive():
            return False, "relay worker is not running"
        return True, ""

    # -- callbacks -----------------------------------------------------------------------------
    def _on_effects(self, effects: list[incidents.Effect]) -> None:
        # Runs on the writer thread after commit: log, and wake the others.
        for e in effects:
            if e.kind in ("opened", "duress", "cancelled", "cancel_rejected", "folded"):
                level = logging.WARNING if e.kind in ("opened", "duress") else logging.INFO
                event(log, f"alert.{e.kind}", level, incident=e.incident_id,
                      node=f"!{e.node_num:08x}" if e.node_num else None, trust=e.trust)
            elif e.kind == "press_test":
                event(log, "alert.press_test", logging.INFO, incident=e.incident_id, node=f"!{e.node_num:08x}")
                self.indicators.chirp()
        self.receipts.wake()
        if self.relay:
            self.relay.wake()
        if self.network is not None:
            self.network.wake()
        self._wake_monitor.set()

    def _on_link_state(self, state: LinkState) -> None:
        self.indicators.link(state.status == "connected")
        self._wake_monitor.set()

    def _on_radio_info(self, info: RadioInfo) -> None:
        """Each handshake: record what the radio is, then give it the keys it lacks (on a thread
        of its own: this runs on the library's reader thread, which must keep reading)."""
        self._store_radio(info)
        threading.Thread(target=self._sync_radio, args=(info,), name="radio-keys", daemon=True).start()

    def _sync_radio(self, info: RadioInfo) -> None:
        if not self.link.wait_connected(self.cfg.radio["handshake_timeout_s"]):
            return
        try:
            synced = self.keeper.sync(info)
        except Exception as e:
            # A database that cannot be read (a full disk has been seen to give "disk I/O error"
            # here) must not end this thread with a traceback: the keys are given at the next
            # handshake, and the operator is told.
            event(log, "radio.keys_not_synced", logging.ERROR, f"the bracelets' keys were not given to the radio: "
                  f"{e}; tried again at the next connection", reason=str(e))
            return
        if synced:
            self._store_radio(info)

    def _store_radio(self, info: RadioInfo) -> None:
        at = self.clock.now()
        snapshot = info.to_state()

        real = self.sim is None

        def job(db):
            before = records.get_state(db, "radio_info")
            records.set_state(db, "radio_info", snapshot, at)
            if real and records.get_state(db, "real_radio_seen") is None:
                records.set_state(db, "real_radio_seen", {"port": self.link.port, "node": snapshot.get("node")}, at)
            old = before[0] if before else {}
            changed = [k for k in ("firmware", "hw_model", "region", "preset", "key_fingerprint")
                       if old.get(k) != snapshot.get(k)]
            if changed:
                extra = Wording(" (changed: {what})", what=", ".join(changed)) if old else ""
                incidents.log_event(db, None, at, "station", "radio identified",
                                    Wording("{model} firmware {firmware}, {region} {preset}{changed}",
                                            model=snapshot["hw_model"], firmware=snapshot["firmware"],
                                            region=snapshot["region"], preset=snapshot["preset"], changed=extra))
        self.writer.submit(job, name="radio-info")

    def _job_configure(self, args: dict, by: str) -> dict:
        def record(action: str, detail: str) -> None:
            at = self.clock.now()
            self.writer.submit(lambda db: incidents.log_event(db, None, at, by, action, detail), name="radio-event")
        return configure.run_and_report(self.link, MeshProfile.from_config(self.cfg), by, record)

    def _job_bracelet_check(self, args: dict, by: str) -> dict:
        def record(action: str, detail: str) -> None:
            at = self.clock.now()
            self.writer.submit(lambda db: incidents.log_event(db, None, at, by, action, detail), name="radio-event")
        return bracelet_check.run(self.link, int(args["node"]), MeshProfile.from_config(self.cfg),
                                  fix=bool(args.get("fix")), record=record,
                                  timeout=float(args.get("timeout", bracelet_check.REQUEST_TIMEOUT_S)),
                                  store=lambda fn: self.writer.submit(fn, name="bracelet-device"))

    def _job_take_back(self, args: dict, by: str) -> dict:
        self.link.take_back()
        return {"ok": True}

    def _registered_bracelets(self) -> list[KeptBracelet]:
        # The keeper runs on short-lived threads, so it has a connection of its own under a lock;
        # not a new connection each time: opening one writes to the -shm file, which the kernel
        # then writes to the SD card (every 30 s at idle, bench/sd_card.py).
        with self._keeper_lock:
            rows = self._keeper_reader.execute(
                "SELECT b.node_num, b.label, b.public_key, n.long_name, n.short_name FROM bracelets b "
                "LEFT JOIN nodes n ON n.num=b.node_num ORDER BY b.node_num").fetchall()
        # Responders' own nodes too: her ACK is a PKI DM, and the messages to her are.
        return [KeptBracelet(*r) for r in rows] + [KeptBracelet(num, name, key) for num, name, key in
                                                   self.escalation.mesh_contacts()]

    def _radio_event(self, detail: str) -> None:
        at = self.clock.now()
        self.writer.submit(lambda db: incidents.log_event(db, None, at, "station", "radio given bracelet key", detail),
                           name="radio-event")

    def _check_radio_keys(self) -> None:
        """A bracelet registered while the station runs: its key goes to the radio within a
        minute, not at the next reconnection (which may be weeks away)."""
        info = self.link.radio_info
        if info is None or not self.link.connected:
            return
        if needed(info, self._registered_bracelets()):
            threading.Thread(target=self._sync_radio, args=(info,), name="radio-keys", daemon=True).start()

    def _receipt_followup(self, follow: receipts.Followup) -> None:
        """A receipt failed for a reason the station can mend before its retry."""
        if follow.action == "push_key":
            info = self.link.radio_info
            if info is not None:
                threading.Thread(target=self.keeper.sync, args=(info, follow.node_num), daemon=True).start()
        elif follow.action == "announce":
            if not self.link.announce():
                log.info("the bracelet !%08x lacks the station's key; this radio cannot announce it on demand",
                         follow.node_num)

    def _on_gps_fix(self, fix, when) -> None:
        now = time.monotonic()
        if now - self._last_gps_store < self.cfg.gps["store_interval_s"]:
            return
        self._last_gps_store = now
        pos = Position(fix.lat, fix.lon, "station_gps", when.timestamp() if when else None, fix.alt, fix.sats,
                       None, fix.quality)
        at = self.clock.now()
        self.writer.submit(lambda db: records.insert_position(db, None, pos, at, None), name="station-fix")

    def button_ack(self) -> None:
        at = self.clock.now()
        self.writer.submit(lambda db: incidents.acknowledge_newest(db, "button", at),
                           on_commit=lambda e: self._wake_monitor.set(), name="button-ack")

    def button_silence(self) -> None:
        self._silenced = True
        log.info("buzzer silenced from the button until the next alert")
        self._wake_monitor.set()

    # -- the monitor thread: alarm outputs and status snapshots -------------------------------
    def _monitor_loop(self) -> None:
        next_status = 0.0
        keys_checked = time.monotonic()
        # Monotonic: a wall clock that jumps at boot (no RTC) must not skip or repeat the purge.
        next_purge = time.monotonic() + self.retention_first_s
        next_look = time.monotonic()
        while not self._stop.is_set():
            try:
                self._update_alarm()
                raised = self.watch.tick(self._reader)
                if self.escalation.tick(self._reader) or raised:
                    self._update_alarm()
                self.jobs.poll()
                if time.monotonic() - keys_checked >= self.key_check_every_s:
                    keys_checked = time.monotonic()
                    self._check_radio_keys()
                if self.writer.unavailable is not None:
                    self.ingest.hold_waiting()
                if self.clock.pending_step():
                    self._take_clock_step()
                if self.sim is not None and time.monotonic() >= next_look:
                    next_look = time.monotonic() + self.look_for_radio_every_s
                    self._look_for_radio()
                if self.ingest.spool_hold and self.writer.unavailable is None and not self.writer.pending():
                    self.ingest.replay_spool()       # what waited only in the spool while it was out
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self.retention_every_s
                    self.purger.start()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + self.status_every_s
                    self._write_status("running")
            except Exception:
                log.exception("monitor step failed")
            self._wake_monitor.wait(0.5)
            self._wake_monitor.clear()

    def _update_alarm(self) -> None:
        # Acknowledgements also come from the console and the command line, so the database,
        # not this process's memory, says what is open; alerts it has not taken yet ring too.
        try:
            open_n, duress_n, ack_n, newest = self._reader.execute(
                "SELECT COALESCE(SUM(state='open'),0), COALESCE(SUM(duress=1),0), "
                "COALESCE(SUM(state='acknowledged'),0), COALESCE(MAX(id),0) FROM incidents "
                "WHERE state IN ('open', 'acknowledged')").fetchone()
            self._alarm_counts = (open_n, duress_n, ack_n)
        except Exception as e:
            log.debug("alarm state unreadable (%s): the last one stands", e)
            open_n, duress_n, ack_n = self._alarm_counts
            newest = self._newest_incident
        if newest > self._newest_incident:
            self._newest_incident = newest
            self._silenced = False
        held = len(self._held)
        if held > self._held_seen:
            self._silenced = False            # a new alert, even one not stored yet, rings again
        self._held_seen = held
        self.indicators.alarm(alarm_level(open_n + held, duress_n, ack_n, self._silenced))

    def status_snapshot(self, phase: str) -> dict:
        s = self.link.state
        clock = self.clock.status()
        c = self.ingest.counters
        return {
            "station": {"phase": phase, "pid": os.getpid(), "version": __version__, "started_at": self.started_at,
                        "database": str(self.cfg.database_path), "db_check": self.writer.db_check},
            "radio": {"status": s.status, "port": s.port, "error": s.error, "since": s.since,
                      "connects": s.connects, "hangs": s.hangs,
                      "node": f"!{s.node_num:08x}" if s.node_num else None, "virtual": self.sim is not None,
                      "firmware": self.link.radio_info.firmware if self.link.radio_info else None,
                      "queue": list(self.link.queue_status) if self.link.queue_status else None},
            "gps": ({"enabled": False} if self.gps is None else
                    {"enabled": True, "port": self.gps.port, "connected": self.gps.connected,
                     "error": self.gps.error, **self.gps_tracker.state.summary()}),
            "clock": {"source": clock.source, "offset_s": round(clock.offset_s, 3),
                      "gps_delta_s": None if clock.last_gps_delta_s is None else round(clock.last_gps_delta_s, 3),
                      "system_plausible": clock.system_plausible, "pending_step_s": round(clock.pending_step_s, 1),
                      "minus_system_s": round(self.clock.minus_system(), 3), "steps": self.clock.steps_taken},
            "ingest": {"packets": c.packets, "duplicates": c.duplicates, "bad_frames": c.bad_frames,
                       "problems": c.problems, "radio_console_lines": c.log_lines,
                       "queue": self.writer.pending(), "commits": self.writer.stats.commits,
                       "commit_errors": self.writer.stats.commit_errors, "held_alerts": len(self._held),
                       "spool_bytes": self.spool.size, "spool_only": c.spool_only, "dropped": c.dropped,
                       "replayed": c.replayed},
            "database": ({"state": "ok"} if self.writer.unavailable is None else
                         {"state": "unavailable", "why": self.writer.unavailable[0],
                          "for_s": round(time.monotonic() - self.writer.unavailable[1], 1),
                          "held_changes": self.writer.pending()}),
            "indicators": {"kind": type(self.indicators).__name__,
                           "detail": getattr(self.indicators, "reason", "gpio")},
            "relay": (self.relay.status(self._reader, time.time()) if self.relay else {"enabled": False}),
            "escalation": self.escalation.status(self._reader),
            "watch": self.watch.status(self._reader, self.clock.now()),
            "network": self.network.status(self._reader),
            "uplink": self.uplink.status() if self.uplink else {"enabled": self.cfg.uplink["enabled"],
                                                                "connected": False, "error": self._uplink_problem},
        }

    def _write_status(self, phase: str) -> None:
        snapshot = self.status_snapshot(phase)
        if self.network is not None:
            self.network.health(snapshot)
        try:
            runtime.write_status(self.cfg.database_path, snapshot)
        except OSError as e:
            log.warning("could not write the status snapshot to %s: %s",
                        runtime.status_path(self.cfg.database_path), e)


def run(cfg: Config, *, sim_speed: float = 1.0, corpus_dir: Path | None = None,
        on_started=None) -> int:
    notifier = Notifier()
    stop, reload = threading.Event(), threading.Event()

    def _signal(signum, frame):
        stop.set()

    def _hangup(signum, frame):
        # `systemctl reload station`, or the SSH session that started it ending: never a death.
        reload.set()

    previous = {s: signal.signal(s, _signal) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, _hangup)
    try:
        return _serve(cfg, notifier, stop, sim_speed, corpus_dir, on_started, reload)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# What a reload (SIGHUP) can change in a running daemon; anything else needs a restart.
RELOADABLE = ("relay", "log", "receipts", "watch")
RELOADABLE_LISTS = ("destinations", "places")


def reload_config(station: "Station", source: Path | None) -> tuple[list[str], list[str]]:
    """Read the config file again and apply what can be applied live: the destinations and their
    credentials, templates and relay settings, the log level, the receipts' texts and timing, the watch.
    Returns (applied, needing a restart), by section name. A file that does not validate changes
    nothing: the running config stands, and the error is logged."""
    from station import config as configmod
    try:
        new = configmod.load(source) if source is not None else station.cfg
    except configmod.ConfigError as e:
        event(log, "config.reload_refused", logging.ERROR, f"config not reloaded: {e}")
        return [], []
    old = station.cfg
    changed = sorted(name for name in new.sections if new.sections[name] != old.sections.get(name))
    changed += [name for name in RELOADABLE_LISTS if new.lists.get(name) != old.lists.get(name)]
    if new.lists.get("destinations") and "destinations" not in changed:
        changed.append("destinations")   # the same list: its credential files are read again
    applied = [c for c in changed if c in RELOADABLE or c in RELOADABLE_LISTS]
    later = [c for c in changed if c not in applied]
    merged = old.with_overrides(**{c: new.sections[c] for c in applied if c in new.sections},
                                **{c: new.lists.get(c, []) for c in applied if c in RELOADABLE_LISTS})
    station.cfg = merged
    if "log" in applied:
        from station import logs
        logs.setup(merged.log["level"], merged.log["raw_frames"])
    if "receipts" in applied:
        station.apply_receipts(merged.receipts)
    if {"relay", "destinations", "places"} & set(applied):
        station.restart_relay()
    if "watch" in applied:
        station.apply_watch(merged)
    event(log, "config.reloaded", logging.WARNING,
          f"config reloaded: {', '.join(applied) or 'nothing changed'}"
          + (f"; needs a restart to apply: {', '.join(later)}" if later else ""), applied=",".join(applied),
          restart_needed=",".join(later))
    return applied, later


def _serve(cfg: Config, notifier: Notifier, stop: threading.Event, sim_speed: float,
           corpus_dir: Path | None, on_started, reload: threading.Event | None = None) -> int:
    station = Station(cfg, sim_speed=sim_speed, corpus_dir=corpus_dir).start()
    if on_started:
        on_started(station)
    connected = station.link.wait_connected(cfg.radio["ready_timeout_s"])
    # READY even without a radio: the console, the stored alerts and the GPS must stay
    # available, and systemd would otherwise kill and restart a station whose radio is unplugged.
    notifier.notify("READY=1", "STATUS=" + ("radio connected" if connected else
                                            f"radio not connected: {station.link.state.error or 'connecting'}"))
    log.info("station running (database %s, radio %s)", cfg.database_path, station.link.state.status)
    interval = min(notifier.watchdog_s / 2, 5.0) if notifier.watchdog_s else 1.0
    last_problem = None
    while not stop.wait(interval):
        if reload is not None and reload.is_set():
            reload.clear()
            notifier.notify("RELOADING=1")
            try:
                reload_config(station, cfg.source)
            except Exception:
                log.exception("config reload failed; the running config stands")
            notifier.notify("READY=1")
        ok, problem = station.healthy()
        if ok:
            notifier.notify("WATCHDOG=1")
        if problem != last_problem:
            if problem:
                event(log, "watchdog.withheld", logging.ERROR, problem)
            notifier.notify("STATUS=" + (problem or f"radio {station.link.state.status}"))
            last_problem = problem
    notifier.notify("STOPPING=1")
    log.info("stopping")
    station.stop()
    return 0
