"""The systemd contract of `station run`: READY after the database and radio are up, WATCHDOG
only while the radio supervisor and the writer are alive, STOPPING on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from station import daemon
from station.radio.sim import SimRadio

from .conftest import make_config


class NotifySocket:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def close(self):
        self._stop.set()
        self._t.join(1)
        self.sock.close()


@pytest.mark.slow
def test_ready_watchdog_and_stopping_and_no_watchdog_once_the_radio_worker_hangs(tmp_path, monkeypatch):
    ns = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    sim = SimRadio("idle", speed=0, tcp=0).start()
    cfg = make_config(tmp_path, radio={"port": sim.port, "handshake_timeout_s": 1.0})
    release = threading.Event()
    marks = {}

    def hang_supervisor():
        marks["hung"] = time.monotonic()
        release.wait(20)     # the supervisor thread is stuck here, as in a wedged driver call
        return True

    def started(station):
        station.stale_after_s = 1.5     # the writer stamps itself at least once a second

        def sabotage():
            station.link._probe = hang_supervisor
        threading.Timer(1.5, sabotage).start()
        threading.Timer(7.0, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
        threading.Timer(7.1, release.set).start()

    try:
        assert daemon.run(cfg, on_started=started) == 0
    finally:
        release.set()
        sim.stop()
        ns.close()
    lines = [m for _, m in ns.messages]
    assert lines[0] == "READY=1" and lines[1] == "STATUS=radio connected"
    assert lines[-1] == "STOPPING=1"
    pings = [t for t, m in ns.messages if m == "WATCHDOG=1"]
    assert len([t for t in pings if t < marks["hung"]]) >= 5
    # After the hang, at most the pings already due before the worker went stale.
    grace = 1.5 + cfg.radio["handshake_timeout_s"]
    assert [t for t in pings if t > marks["hung"] + grace + 0.3] == []
    assert any("radio supervisor is not running" in m for m in lines)


def test_without_notify_socket_the_notifier_is_silent(monkeypatch):
    from station.sdnotify import Notifier
    assert Notifier({}).notify("READY=1") is False
    assert Notifier({"NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "30000000"}).watchdog_s == 30.0
