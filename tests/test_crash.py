"""`kill -9` of `station run` at random moments while a scenario streams: after each restart the
database passes quick_check, nothing that was stored is lost, no incident is duplicated."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from station.radio.virtual.bracelets import cast

from .conftest import free_port, listening, register_cast, wait_until

KILLS = 30




def station(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "station", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kw)


def snapshot(db_path) -> tuple[set, dict]:
    with sqlite3.connect(db_path) as c:
        keys = set(c.execute("SELECT from_num, packet_id FROM packets"))
        incidents = {r[0]: r[1] for r in c.execute("SELECT id, node_num FROM incidents")}
    return keys, incidents


def quick_check(db_path) -> str:
    with sqlite3.connect(db_path) as c:
        return c.execute("PRAGMA quick_check").fetchone()[0]


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_duplicates_nothing(tmp_path):
    rng = random.Random(20261122)
    port = free_port()
    db_path = tmp_path / "station.db"
    cfg = tmp_path / "station.toml"
    cfg.write_text(f"""
[radio]
port = "tcp://127.0.0.1:{port}"
heartbeat_s = 0.5
liveness_timeout_s = 3.0
handshake_timeout_s = 3.0
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[storage]
database = "{db_path}"
[gpio]
enabled = false
[log]
level = "WARNING"
""")
    register_cast(db_path, cast())
    radio = station("radio", "simulate", "--tcp", str(port), "--scenario", "stream", "--replay-last", "10")
    wait_until(lambda: listening(port), 10, 0.05, what="virtual radio listening")
    seen: set = set()
    incidents_before: dict = {}
    try:
        for i in range(KILLS):
            p = station("--config", str(cfg), "run")
            before = len(seen)
            wait_until(lambda: len(snapshot(db_path)[0]) > before, 20, 0.05, what=f"ingestion after restart {i}")
            time.sleep(rng.uniform(0.05, 0.8))
            keys, incidents = snapshot(db_path)
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
            assert quick_check(db_path) == "ok", f"after kill {i + 1}"
            # What was committed before the kill is still there, and nothing was added twice.
            after_keys, after_incidents = snapshot(db_path)
            assert keys <= after_keys and seen <= after_keys
            assert incidents.items() <= after_incidents.items()
            seen = after_keys
            incidents_before = after_incidents
        final = station("--config", str(cfg), "run")
        wait_until(lambda: len(snapshot(db_path)[0]) > len(seen), 20, 0.05, what="ingestion by the last station")
        final.send_signal(signal.SIGTERM)
        assert final.wait(15) == 0
    finally:
        radio.send_signal(signal.SIGTERM)
        radio.wait(10)
    assert quick_check(db_path) == "ok"
    keys, incidents = snapshot(db_path)
    assert seen <= keys and incidents_before.items() <= incidents.items()
    assert len(keys) > 200
    # Every bracelet pressed many times within the fold window: one incident each, however
    # often the station died and the radio replayed its queue.
    with sqlite3.connect(db_path) as c:
        per_node = dict(c.execute("SELECT node_num, COUNT(*) FROM incidents GROUP BY node_num"))
        dups = c.execute("SELECT COALESCE(SUM(duplicates), 0) FROM packets").fetchone()[0]
    people = cast()
    assert per_node == {people[n].num: 1 for n in ("amina", "bashir", "chen")}
    assert dups > 0      # the radio did replay packets after reconnects, and they were dropped


def test_a_second_daemon_on_the_same_database_refuses_to_start_and_names_the_first(tmp_path):
    """Two daemons on one database would both hold the radio and both answer the wearer."""
    from station.storage.lock import DaemonLock
    radio_path = tmp_path / "radio"
    radio = subprocess.Popen([sys.executable, "-m", "station", "radio", "simulate", "--pty", str(radio_path),
                              "--scenario", "idle"], stderr=subprocess.PIPE, text=True)
    radio.stderr.readline()
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[radio]\nport = "{radio_path}"\n[storage]\ndatabase = "{tmp_path / "s.db"}"\n'
                   '[gpio]\nenabled = false\n')
    first = subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "run"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in first.stdout:
            if "station running" in line:
                break
        second = subprocess.run([sys.executable, "-m", "station", "--config", str(cfg), "run"],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert f"another station daemon (pid {first.pid}) is already running" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        assert first.poll() is None              # the first one carries on
        # kill -9 leaves no stale lock: the kernel drops it with the process.
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        DaemonLock(tmp_path / "s.db").acquire().release()
    finally:
        if first.poll() is None:
            first.kill()
        radio.terminate()
        radio.wait(10)
