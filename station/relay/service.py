"""The relay as the daemon runs it: destinations, connectivity monitor and worker together."""

from __future__ import annotations

import logging
from typing import Callable

from station.config import Config
from station.logs import event
from station.relay import outbox as ob
from station.relay.compose import Templates
from station.relay.connectivity import Connectivity
from station.relay.destinations import make
from station.relay.worker import RelayWorker
from station.storage.writer import Writer

log = logging.getLogger(__name__)


class Relay:
    def __init__(self, cfg: Config, writer: Writer, clock, on_internet: Callable[[bool], None] | None = None,
                 claim_gate=None):
        rc = cfg.relay
        self.destinations = cfg.destinations(read_secrets=True)
        self.clients: dict = {}
        self.errors: dict[str, str] = {}
        for d in self.destinations:
            if not d.enabled:
                continue
            if d.problem:
                self.errors[d.name] = d.problem
                event(log, "relay.destination_unusable", logging.ERROR, d.problem, destination=d.name)
                continue
            try:
                self.clients[d.name] = make(d)
            except Exception as e:   # a bad URL or library refusal: the other destinations still work
                self.errors[d.name] = f"{type(e).__name__}: {e}"
                log.error("destination %s cannot be used: %s", d.name, self.errors[d.name])
        self.plan = ob.Plan(self.destinations, Templates(rc["templates_dir"] or None), rc["time_zone"],
                            tuple(cfg.places()), rc["city_radius_km"], rc["update_every_min"] * 60)

        def changed(online: bool) -> None:
            event(log, "internet.up" if online else "internet.down", logging.WARNING,
                  "relaying" if online else "posts wait in the outbox")
            if on_internet:
                on_internet(online)
            self.worker.wake()

        self.connectivity = Connectivity({n: c.probe_url() for n, c in self.clients.items()},
                                         interval_s=rc["probe_interval_s"],
                                         offline_interval_s=rc["offline_probe_interval_s"],
                                         online_after=rc["online_after"], offline_after=rc["offline_after"],
                                         on_change=changed)
        self.worker = RelayWorker(writer, self.plan, self.clients, self.connectivity, clock,
                                  max_attempts=rc["max_attempts"], backoff_max_s=rc["backoff_max_s"],
                                  claim_gate=claim_gate)

    def start(self) -> "Relay":
        self.connectivity.start()
        self.worker.start()
        return self

    def stop(self) -> None:
        self.worker.stop()
        self.connectivity.stop()

    def wake(self) -> None:
        self.worker.wake()

    def status(self, db, at: float) -> dict:
        states = dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        return {
            **self.connectivity.status(),
            "outbox": states,
            "errors": self.errors,
            "budget": {d.name: {"used": round(ob.spent(db, d.name, at), 3), "budget": d.budget}
                       for d in self.destinations if d.budget is not None or d.cost_per_post},
            "blocked": ob.blocked_destinations(db, at),
        }
