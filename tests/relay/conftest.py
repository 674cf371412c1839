"""A relay against local fake platforms over real HTTP: real tweepy, real Mastodon.py, a real
SQLite outbox, the real worker and connectivity monitor, fast timings."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from station.clock import StationClock
from station.relay import outbox as ob
from station.relay import settings
from station.relay.compose import Templates
from station.relay.connectivity import Connectivity
from station.relay.destinations import make
from station.relay.worker import RelayWorker
from station.storage.writer import Writer
from tests.conftest import wait_until
from tests.fakes.social import FakeMastodon, FakeWebhook, FakeX

AMINA = 0xB5A1E001
CONSENT = {"publish": "at-once", "name_mode": "pseudonym", "pseudonym": "Defender A", "real_name": "Amina Diallo",
           "precision": "1km", "map_link": 0, "languages": '["en"]', "approvals": 1, "publish_after_min": None}


def secret_files(d: Path) -> dict[str, str]:
    out = {}
    for key in ("consumer_key_file", "consumer_secret_file", "access_token_file", "access_token_secret_file",
                "secret_file"):
        p = d / key
        p.write_text(f"value-of-{key}")
        os.chmod(p, 0o600)
        out[key] = str(p)
    return out


def destinations_toml(x_url: str, mastodon_url: str, files: dict[str, str], **extra) -> str:
    """[[destinations]] for an X and a Mastodon fake, as a station's config file says it."""
    more = "".join(f"{k} = {v}\n" for k, v in extra.items())
    return f"""
[[destinations]]
name = "x"
kind = "x"
api_base_url = "{x_url}"
{more}consumer_key_file = "{files['consumer_key_file']}"
consumer_secret_file = "{files['consumer_secret_file']}"
access_token_file = "{files['access_token_file']}"
access_token_secret_file = "{files['access_token_secret_file']}"
[[destinations]]
name = "mastodon"
kind = "mastodon"
api_base_url = "{mastodon_url}"
{more}access_token_file = "{files['access_token_file']}"
"""


class RelayHarness:
    def __init__(self, tmp: Path, *, dest_overrides: dict | None = None, kinds=("x", "mastodon"),
                 max_attempts: int = 4, timeout_s: float = 1.0, clock: StationClock | None = None):
        self.tmp = tmp
        self.x, self.mastodon = FakeX().up(), FakeMastodon().up()
        self.webhook = FakeWebhook(secret="value-of-secret_file").up()
        files = secret_files(tmp)
        raw = {
            "x": {"name": "x", "kind": "x", "api_base_url": self.x.url, "timeout_s": timeout_s, **{
                k: files[k] for k in settings.CREDENTIALS["x"]}},
            "mastodon": {"name": "mastodon", "kind": "mastodon", "api_base_url": self.mastodon.url,
                         "timeout_s": timeout_s, "access_token_file": files["access_token_file"]},
            "webhook": {"name": "webhook", "kind": "webhook", "audience": "partners",
                        "url": self.webhook.url + "/hook", "secret_file": files["secret_file"], "timeout_s": timeout_s},
            "drill": {"name": "drill", "kind": "drill", "audience": "private", "path": str(tmp / "drills.jsonl")},
        }
        for name, extra in (dest_overrides or {}).items():
            raw[name].update(extra)
        self.raw = [raw[k] for k in kinds]
        self.dests = [settings.destination(r, i, tmp) for i, r in enumerate(self.raw)]
        self.writer = Writer(tmp / "station.db").start()
        self.plan = ob.Plan(self.dests, Templates(), "UTC", (settings.Place("Dakar", 14.6928, -17.4467),), 30.0)
        self.max_attempts = max_attempts
        self.worker: RelayWorker | None = None
        self.connectivity: Connectivity | None = None
        self.next_incident = 1
        self.clock = clock or StationClock()

    def start(self) -> "RelayHarness":
        clients = {d.name: make(d) for d in self.dests}
        self.connectivity = Connectivity({n: c.probe_url() for n, c in clients.items()}, interval_s=0.2,
                                         offline_interval_s=0.05, online_after=1, offline_after=1, timeout_s=0.5,
                                         on_change=lambda online: self.worker and self.worker.wake()).start()
        self.worker = RelayWorker(self.writer, self.plan, clients, self.connectivity, self.clock,
                                  max_attempts=self.max_attempts, backoff_max_s=0.5, backoff_base_s=0.05,
                                  rng=random.Random(1), idle_s=0.05).start()
        return self

    def restart(self) -> "RelayHarness":
        self.worker.stop()
        self.connectivity.stop()
        return self.start()

    def stop(self) -> None:
        if self.worker:
            self.worker.stop()
            self.connectivity.stop()
        self.writer.stop()
        for f in (self.x, self.mastodon, self.webhook):
            f.down()

    # -- data ------------------------------------------------------------------------------
    def bracelet(self, num: int = AMINA, **consent) -> None:
        values = {**CONSENT, **consent}

        def add(db):
            db.execute("INSERT OR IGNORE INTO bracelets (node_num, label, added_at) VALUES (?, 'Amina', ?)",
                       (num, time.time()))
            db.execute(f"UPDATE bracelets SET {', '.join(f'{k}=?' for k in values)} WHERE node_num=?",
                       (*values.values(), num))
        self.writer.call(add)

    def incident(self, num: int = AMINA, *, trust: str = "registered", drill: bool = False,
                 lat: float = 14.69371, lon: float = -17.44412, opened_at: float | None = None) -> int:
        at = opened_at or time.time()
        return self.writer.call(lambda db: db.execute(
            "INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust, drill, lat, lon, fix_at)"
            " VALUES (?,?,?,'alert_app','open',?,?,?,?,?)", (num, at, at, trust, int(drill), lat, lon, at)).lastrowid)

    def resolve(self, iid: int, resolution: str) -> None:
        from station import incidents
        self.writer.call(lambda db: incidents.resolve(db, iid, resolution, "test", time.time()))
        self.worker.wake()

    def quiet(self) -> None:
        """Wait until the worker has run two whole passes since now, woken for each: what it has
        not done by then, it was not going to do. The proof that nothing happened, without a
        fixed sleep that proves nothing on a slow machine."""
        start = self.worker.passes

        def two_passes() -> bool:
            self.worker.wake()
            return self.worker.passes >= start + 2
        wait_until(two_passes, 20, what="two relay passes")

    def act(self, fn) -> None:
        self.writer.call(fn)
        if self.worker:
            self.worker.wake()

    def rows(self, sql: str = "SELECT * FROM outbox ORDER BY id", params: tuple = ()) -> list[dict]:
        # A connection of its own: the writer's would show its transaction before it commits,
        # and a command run next (its own connection) would then not find what this saw.
        import contextlib
        import sqlite3
        with contextlib.closing(sqlite3.connect(self.writer.path)) as conn:
            cur = conn.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def states(self) -> dict[tuple[str, str], str]:
        return {(r["destination"], r["kind"]): r["state"] for r in self.rows()}

    def wait_states(self, want: dict, timeout: float = 10.0) -> None:
        wait_until(lambda: all(self.states().get(k) == v for k, v in want.items()), timeout,
                   what=f"outbox states {want}, have {self.states()}")

    def drill_file(self) -> list[dict]:
        p = self.tmp / "drills.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


@pytest.fixture
def relay(tmp_path):
    made = []

    def make_harness(**kw) -> RelayHarness:
        h = RelayHarness(tmp_path / f"r{len(made)}", **kw) if (tmp_path / f"r{len(made)}").mkdir() is None else None
        made.append(h)
        return h
    yield make_harness
    for h in made:
        h.stop()
