"""`kill -9` of the daemon at 50 random moments while it drains the outbox against the fake
platforms: afterwards every row is sent exactly once or uncertain, and no platform saw a
duplicate post."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from station.storage.writer import Writer
from tests.conftest import wait_until
from tests.fakes.social import FakeMastodon, FakeX

from .conftest import AMINA, CONSENT, destinations_toml, secret_files

KILLS = 50
INCIDENTS = 300


def rows(db_path) -> list[tuple]:
    with sqlite3.connect(db_path) as c:
        return c.execute("SELECT id, destination, state, remote_id, idempotency_key, text FROM outbox").fetchall()


@pytest.mark.slow
def test_kill_9_during_a_drain_never_posts_twice(tmp_path):
    rng = random.Random(50)
    x, mastodon = FakeX().up(), FakeMastodon().up()
    x.delay_s = mastodon.delay_s = 0.03
    files = secret_files(tmp_path)
    db_path = tmp_path / "station.db"
    w = Writer(db_path).start()
    consent = {**CONSENT, "precision": "exact"}
    w.call(lambda db: db.execute("INSERT INTO bracelets (node_num, label, added_at) VALUES (?, 'A', 0)", (AMINA,)))
    w.call(lambda db: db.execute(f"UPDATE bracelets SET {', '.join(f'{k}=?' for k in consent)}", tuple(consent.values())))
    now = time.time()
    for i in range(INCIDENTS):
        w.call(lambda db, i=i: db.execute(
            "INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust, drill, lat, lon, fix_at) "
            "VALUES (?,?,?,'alert_app','open','registered',0,?,?,?)", (AMINA, now + i, now + i, i * 0.001, 1.0, now)))
    w.stop()
    cfg = tmp_path / "station.toml"
    cfg.write_text(f"""
[radio]
port = "sim"
scenario = "idle"
[storage]
database = "{db_path}"
[gpio]
enabled = false
[log]
level = "WARNING"
[relay]
probe_interval_s = 0.5
offline_probe_interval_s = 0.1
online_after = 1
""" + destinations_toml(x.url, mastodon.url, files, max_precision='"exact"', timeout_s=2))
    try:
        for i in range(KILLS):
            p = subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "run"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            before = len(x.posts) + len(mastodon.posts)
            wait_until(lambda: len(x.posts) + len(mastodon.posts) > before or p.poll() is not None, 20,
                       what=f"posting after restart {i}")
            time.sleep(rng.uniform(0.0, 0.4))
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
            with sqlite3.connect(db_path) as c:
                assert c.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            texts = x.texts()
            assert len(texts) == len(set(texts)) and x.rejected_duplicates == 0, f"after kill {i + 1}"
        final = subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "run"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: rows(db_path) and all(r[2] in ("sent", "uncertain") for r in rows(db_path)), 120, 0.2,
                   what="the drain to finish")
        final.send_signal(signal.SIGTERM)
        assert final.wait(20) == 0
    finally:
        x.down()
        mastodon.down()
    outbox = rows(db_path)
    assert len(outbox) == 2 * INCIDENTS
    # X: no text twice; each sent row is exactly one post; uncertain rows were never sent again.
    x_texts = x.texts()
    assert len(x_texts) == len(set(x_texts)) and x.rejected_duplicates == 0
    assert "" not in x_texts and "" not in mastodon.texts()
    sent_x = [r for r in outbox if r[1] == "x" and r[2] == "sent"]
    assert sorted(r[3] for r in sent_x) == sorted({r[3] for r in sent_x})
    assert {r[3] for r in sent_x} <= {p.id for p in x.posts}
    assert len(x.posts) <= len([r for r in outbox if r[1] == "x"])
    # Mastodon: one status per idempotency key, and crashed requests were reconciled, not doubled.
    assert len({p.key for p in mastodon.posts}) == len(mastodon.posts)
    sent_m = [r for r in outbox if r[1] == "mastodon" and r[2] == "sent"]
    assert {r[3] for r in sent_m} == {p.id for p in mastodon.posts}
    uncertain = [r for r in outbox if r[2] == "uncertain"]
    assert all(r[1] == "x" for r in uncertain)      # only where no idempotency key can settle it
    print(f"\nrelay crash test: {len(uncertain)} uncertain X rows after {KILLS} kills; "
          f"{len(x.posts)} X posts, {len(mastodon.posts)} Mastodon posts")
