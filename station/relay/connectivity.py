"""Is there internet? DNS plus an HTTPS request to each destination's API host, with hysteresis.

A destination counts as reachable after `online_after` successful probes in a row and as
unreachable after `offline_after` failures (probes, or real requests that could not connect),
so a flapping link does not start and stop the relay on every packet. Offline, probes run
every `offline_interval_s` so the worker wakes within seconds of the link returning.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)


@dataclass
class _Host:
    url: str
    reachable: bool = False
    streak: int = 0          # positive: successes in a row, negative: failures in a row
    last_error: str = ""


def probe(url: str, timeout_s: float) -> str | None:
    """None if the host answered anything at all over HTTP(S); else what went wrong."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError as e:
        return f"DNS: {e}"
    try:
        requests.head(f"{parts.scheme}://{parts.netloc}/", timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as e:
        return f"{type(e).__name__}"
    return None


class Connectivity:
    def __init__(self, urls: dict[str, str | None], *, interval_s: float = 30.0, offline_interval_s: float = 2.0,
                 online_after: int = 2, offline_after: int = 2, timeout_s: float = 5.0,
                 on_change: Callable[[bool], None] | None = None, probe_fn=probe):
        # Destinations without a URL (the drill file) need no internet and are always reachable.
        self.hosts = {name: _Host(url) for name, url in urls.items() if url}
        self.local = {name for name, url in urls.items() if not url}
        self.interval_s, self.offline_interval_s = interval_s, offline_interval_s
        self.online_after, self.offline_after = online_after, offline_after
        self.timeout_s = timeout_s
        self.on_change = on_change or (lambda online: None)
        self.probe_fn = probe_fn
        self.alive_at = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._online = False
        self._thread = threading.Thread(target=self._run, name="relay-connectivity", daemon=True)

    @property
    def online(self) -> bool:
        return self._online

    def reachable(self, name: str) -> bool:
        if name in self.local:
            return True
        h = self.hosts.get(name)
        return h is not None and h.reachable

    def status(self) -> dict:
        return {"online": self._online,
                "destinations": {n: {"reachable": h.reachable, "error": h.last_error} for n, h in self.hosts.items()}}

    def start(self) -> "Connectivity":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        self._thread.join(3)

    def report(self, name: str, ok: bool, error: str = "") -> None:
        """A real request's result counts like a probe's."""
        h = self.hosts.get(name)
        if h is not None:
            self._record(h, ok, error)
            if not ok:
                self._kick.set()

    def _record(self, h: _Host, ok: bool, error: str) -> None:
        with self._lock:
            h.streak = max(1, h.streak + 1) if ok else min(-1, h.streak - 1)
            h.last_error = "" if ok else error
            if ok and not h.reachable and h.streak >= self.online_after:
                h.reachable = True
                log.info("destination host %s reachable", h.url)
            elif not ok and h.reachable and -h.streak >= self.offline_after:
                h.reachable = False
                log.warning("destination host %s unreachable: %s", h.url, error)
            online = any(x.reachable for x in self.hosts.values())
            changed = online != self._online
            self._online = online
        if changed:
            self.on_change(online)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.alive_at = time.monotonic()
            for h in list(self.hosts.values()):
                error = self.probe_fn(h.url, self.timeout_s)
                self._record(h, error is None, error or "")
            settled = all(h.reachable for h in self.hosts.values())
            self._kick.wait(self.interval_s if settled else self.offline_interval_s)
            self._kick.clear()
