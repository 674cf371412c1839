"""The watch as the daemon runs it: a sweep from the monitor thread every few seconds (read on a
reader connection; the writer is called only when something is due), the check-ins that come in
with the ingest transaction, and how long the station has been listening."""

from __future__ import annotations

import logging
import time
from typing import Callable

from meshtastic.protobuf import mesh_pb2

from station.incidents import Effect
from station.storage import records
from station.watch import rules

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 5.0          # silences are minutes long; a sweep costs a read of the registry
DEAF_RESETS_AFTER_S = 120.0  # a USB hiccup or a quick restart is not a gap in what was heard
REMEMBER_EVERY_S = 60.0      # how often the listening period is written down (for a quick restart)
LISTENING_KEY = "watch_listening"


class Watch:
    def __init__(self, cfg, writer, clock, *, listening: Callable[[], bool], drill: bool,
                 on_effects: Callable[[list[Effect]], None] = lambda effects: None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.defaults = rules.Defaults.of(cfg)
        self.writer = writer
        self.clock = clock
        self.listening = listening
        self.drill = drill
        self.on_effects = on_effects
        self.monotonic = monotonic
        self.since: float | None = None       # listening without a gap since (station clock)
        self._deaf_at: float | None = None
        self._remembered = 0.0
        self._next_sweep = 0.0
        self.sweeps = self.raised = 0

    @property
    def enabled(self) -> bool:
        return self.defaults.enabled

    def restore(self, reader) -> None:
        """A quick restart keeps the listening period it interrupted (its gap is under a minute or
        two); after a longer one the station cannot know what it missed, and starts counting anew."""
        got = records.get_state(reader, LISTENING_KEY)
        if got and isinstance(got[0], dict):
            since, alive = got[0].get("since"), got[0].get("alive_at")
            if since is not None and alive is not None and 0 <= self.clock.now() - alive <= DEAF_RESETS_AFTER_S:
                self.since = float(since)
                self._deaf_at = float(alive)

    def clock_stepped(self, step: float) -> None:
        for name in ("since", "_deaf_at"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name) + step)

    def _listen(self, now: float) -> None:
        if self.listening():
            if self.since is None or (self._deaf_at is not None and now - self._deaf_at > DEAF_RESETS_AFTER_S):
                self.since = now
            self._deaf_at = None
            if self.monotonic() - self._remembered >= REMEMBER_EVERY_S:
                self._remembered = self.monotonic()
                value = {"since": self.since, "alive_at": now}
                self.writer.submit(lambda db: records.set_state(db, LISTENING_KEY, value, now), name="watch-listening")
        elif self._deaf_at is None:
            self._deaf_at = now

    def listening_since(self, now: float) -> float | None:
        """None while deaf for longer than a hiccup: nothing is silent while nothing is heard."""
        if self.since is None or (self._deaf_at is not None and now - self._deaf_at > DEAF_RESETS_AFTER_S):
            return None
        return self.since

    def tick(self, reader) -> int:
        """From the monitor thread. Alarms raised."""
        if not self.enabled:
            return 0
        now = self.clock.now()
        self._listen(now)
        if self.monotonic() < self._next_sweep:
            return 0
        self._next_sweep = self.monotonic() + SWEEP_EVERY_S
        self.sweeps += 1
        since = self.listening_since(now)
        if not rules.anything_due(rules.wearers(reader, self.defaults), now, self.defaults, since):
            return 0
        effects = self.writer.call(lambda db: rules.sweep(db, now, self.defaults, since, self.drill))
        if effects:
            self.raised += len(effects)
            for e in effects:
                log.warning("watch alarm: alert %d for !%08x", e.incident_id, e.node_num)
            self.on_effects(effects)
        return len(effects)

    def wake(self) -> None:
        """Look at once (a setting changed, a test moved the clock)."""
        self._next_sweep = 0.0

    def on_text(self, db, packet: mesh_pb2.MeshPacket, text: str, at: float) -> bool:
        """A text from a node (inside the ingest transaction): whether it was a wearer's check-in."""
        if not self.enabled or not rules.is_checkin(text, self.defaults.checkin_word):
            return False
        return rules.checkin(db, packet, at, self.defaults)

    def status(self, reader, now: float) -> dict:
        if not self.enabled:
            return {"enabled": False}
        # Every 2 s in the status snapshot: counts, not the sweep's whole read of every wearer.
        wearers, watched, checkins = reader.execute(
            "SELECT COUNT(*), COALESCE(SUM(watch), 0), COALESCE(SUM(checkin_every_s > 0), 0) FROM bracelets").fetchone()
        return {"enabled": True, "listening_since": self.listening_since(now), "wearers": wearers,
                "watched": watched, "checkins": checkins, "sweeps": self.sweeps, "alarms_raised": self.raised}
