"""A station killed (kill -9: a power cut) while it publishes its events: after the restart the hub
has every event exactly once. From the view of the coordinator at the hub, whose count of alerts
must be the stations' count, not more and not less."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from station.radio.sim import SimRadio
from station.storage.writer import Writer
from tests.conftest import wait_until
from tests.test_network import hub_rows, net  # noqa: F401  (the broker fixture)

N = 2000


def _alerts(path, start: int, count: int) -> None:
    """Alerts stored by another process (the console, a command): the triggers queue them too."""
    w = Writer(path).start()
    w.call(lambda db: [db.execute(
        "INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust) "
        "VALUES (?, ?, ?, 'keyword', 'open', 'unregistered')", (0x20000000 + k, time.time(), time.time()))
        for k in range(start, start + count)])
    w.stop()


@pytest.mark.slow
def test_kill_9_while_publishing_loses_no_event_and_the_hub_applies_none_twice(net, tmp_path):  # noqa: F811
    hub = net.hub()
    radio = SimRadio("idle", speed=0, pty=str(tmp_path / "radio")).start()
    db_path = tmp_path / "station.db"
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[radio]\nport = "{radio.port}"\n[storage]\ndatabase = "{db_path}"\n[gpio]\nenabled = false\n'
                   f'[network]\nenabled = true\nbroker = "{net.url}"\nstation_id = "kibera"\n'
                   f'password_file = "{net.password_file("kibera")}"\nca_file = "{net.ca}"\n')

    def daemon() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "run"],
                                stdout=open(tmp_path / "daemon.log", "ab"), stderr=subprocess.STDOUT)

    def queued() -> int:
        with sqlite3.connect(db_path) as db:
            return db.execute("SELECT COUNT(*) FROM network_queue WHERE kind='incident'").fetchone()[0]
    proc = daemon()
    try:
        wait_until(lambda: db_path.exists() and "MQTT connected" in (tmp_path / "daemon.log").read_text(), 30,
                   what="the daemon on the broker")
        _alerts(db_path, 0, N // 2)
        applied = lambda: hub_rows(hub, "SELECT COUNT(*) FROM applied WHERE station='kibera'")[0][0]  # noqa: E731
        wait_until(lambda: applied() >= 20, 30, interval=0.002, what="publishing to be under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with sqlite3.connect(db_path) as db:
            unconfirmed = db.execute("SELECT COUNT(*) FROM network_queue WHERE published_at IS NULL").fetchone()[0]
        assert unconfirmed > 0, "killed too late: everything was already published"
        _alerts(db_path, N // 2, N // 2)            # stored while it is down: queued by the triggers
        proc = daemon()
        receptions = lambda: hub_rows(hub, "SELECT COUNT(*) FROM receptions WHERE station='kibera'")[0][0]  # noqa: E731
        wait_until(lambda: receptions() == N, 90, what="every alert at the hub")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        radio.stop()
    assert queued() == N
    assert hub_rows(hub, "SELECT COUNT(*) FROM hub_incidents")[0][0] == N
    assert hub_rows(hub, "SELECT COUNT(*) FROM receptions WHERE station='kibera'")[0][0] == N


@pytest.mark.slow
def test_kill_9_of_the_hub_while_it_applies_a_backlog_loses_nothing_and_doubles_nothing(net, tmp_path):  # noqa: F811
    """The hub acknowledges an event to the broker only after its commit: killed between the two,
    it gets the event again and knows it has it."""
    from station import config
    from station.clock import SystemClock
    from station.network.service import Network
    cfg = config.validate({"storage": {"database": str(tmp_path / "kibera.db")},
                           "network": {"enabled": True, "broker": net.url, "station_id": "kibera",
                                       "password_file": net.password_file("kibera"), "ca_file": str(net.ca)}},
                          None, tmp_path)
    writer = Writer(cfg.database_path).start()
    link = Network(cfg, writer, SystemClock()).start()
    hub_cfg = tmp_path / "hub.toml"
    hub_cfg.write_text(f'[hub]\ndatabase = "{tmp_path / "hub.db"}"\nbroker = "{net.url}"\n'
                       f'password_file = "{net.password_file("hub")}"\nca_file = "{net.ca}"\n')

    def hub() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "station", "--config", str(hub_cfg), "hub", "run"],
                                stdout=open(tmp_path / "hub.log", "ab"), stderr=subprocess.STDOUT)

    def count(sql: str) -> int:
        try:
            with sqlite3.connect(tmp_path / "hub.db") as db:
                return db.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:        # not created yet
            return 0
    proc = hub()
    try:
        wait_until(lambda: "MQTT connected" in (tmp_path / "hub.log").read_text(), 30, what="the hub on the broker")
        _alerts(cfg.database_path, 0, N)
        wait_until(lambda: count("SELECT COUNT(*) FROM receptions") >= 20, 30, interval=0.002,
                   what="the hub to be applying")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert count("SELECT COUNT(*) FROM receptions") < N, "killed too late: the backlog was already applied"
        proc = hub()
        wait_until(lambda: count("SELECT COUNT(*) FROM receptions") == N, 90, what="the whole backlog")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        link.stop()
        writer.stop()
    assert count("SELECT COUNT(*) FROM hub_incidents") == N
    assert count("SELECT COUNT(*) FROM applied WHERE station='kibera'") == N
