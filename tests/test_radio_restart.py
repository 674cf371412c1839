"""What a real radio keeps, loses and repeats around a station restart, and what the station makes
of it. Firmware: a radio keeps 8 (original ESP32) or 32 packets for a client that closed the
phone API (MeshService.cpp:319-332, mesh-pb-constants.h:17-23); over serial it cannot tell that
a crashed host is gone and writes into the void (SerialConsole.cpp checkIsConnected); a 2.8 radio
replays cached positions and metrics after every handshake (PhoneAPI.cpp:1236-1290)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from station.radio.sim import SimRadio
from station.radio.virtual.bracelets import Bracelet, rmc

from .conftest import register_cast, wait_until


def wearers(n: int) -> list[Bracelet]:
    return [Bracelet(num=0x30000000 + i, long_name=f"Wearer {i}", short_name=f"W{i:02d}", device="techo",
                     lat=14.6 + i * 1e-3, lon=-17.4) for i in range(n)]


def count(db, sql, params=()):
    with sqlite3.connect(db) as c:
        return c.execute(sql, params).fetchone()[0]


@pytest.mark.parametrize("device, kept", [("heltec-v3", 32), ("tbeam", 8)])
def test_a_clean_restart_finds_what_the_radio_kept_newest_texts_and_oldest_positions(harness, device, kept):
    h = harness("idle", "pty", radio={"device": device})
    db = h.cfg.database_path
    h.station.stop()                      # SIGTERM: the station says goodbye (ToRadio.disconnect)
    h.station = None
    radio, people = h.sim.radio, wearers(40)
    for b in people:
        radio.add_node(b)
    # While no station listens: 40 different wearers send a canned SOS (text), then a position.
    for b in people:
        for p in b.canned("SOS"):
            radio.hear(p, b)
    for b in people:
        radio.hear(b.position(), b)
    assert radio.pending() == kept and radio.counters.dropped_queue_full == 80 - kept
    h.start(play=False)
    wait_until(lambda: count(db, "SELECT COUNT(*) FROM packets WHERE port='TEXT_MESSAGE_APP'") == kept,
               what="the queued alerts")
    # A full queue pushes out its oldest packet for a text, and refuses anything else: what the
    # station finds is the last `kept` alerts, and no position at all.
    senders = {r for (r,) in sqlite3.connect(db).execute("SELECT node_num FROM incidents")}
    assert senders == {b.num for b in people[-kept:]}
    assert count(db, "SELECT COUNT(*) FROM positions") == 0


def test_a_station_that_crashes_loses_what_the_radio_hears_until_it_is_back(tmp_path):
    """The radio writes to a serial port nobody reads: after `kill -9`, alerts heard before the
    new station's handshake are gone. The figure an office must know is in the README."""
    sim = SimRadio("idle", speed=0, pty=str(tmp_path / "radio")).start()
    db = tmp_path / "station.db"
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[radio]\nport = "{sim.port}"\nheartbeat_s = 0.5\nliveness_timeout_s = 2.0\n'
                   f'[storage]\ndatabase = "{db}"\n[gpio]\nenabled = false\n[log]\nlevel = "WARNING"\n')
    register_cast(db, sim.stage.people)
    run = [sys.executable, "-m", "station", "--config", str(cfg), "run"]
    p = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: sim.radio.client_ready.is_set(), 20, what="the station's handshake")
        people = wearers(5)
        for b in people:
            sim.radio.add_node(b)
        sim.radio.hear(people[0].canned("SOS")[0], people[0])
        wait_until(lambda: db.exists() and count(db, "SELECT COUNT(*) FROM incidents") == 1, 10, what="first alert")
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        wait_until(lambda: not sim.radio.client_ready.is_set(), 10, what="the radio to lose its host")
        for b in people[1:]:
            sim.radio.hear(b.canned("SOS")[0], b)            # heard while the station is dead
        assert sim.radio.counters.lost_port_closed == 4
        p = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: sim.radio.counters.handshakes == 2 and sim.radio.client_ready.is_set(), 20,
                   what="the new station's handshake")
        sim.radio.hear(people[0].canned("SAFE")[0], people[0])   # a packet after the restart arrives
        wait_until(lambda: count(db, "SELECT COUNT(*) FROM packets WHERE port='TEXT_MESSAGE_APP'") == 2, 10,
                   what="traffic after the restart")
        assert count(db, "SELECT COUNT(*) FROM incidents") == 1
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(15)
        sim.stop()


# How often the replayed position has been heard: stored once, then counted as a duplicate.
SIGHTINGS = ("SELECT COALESCE(SUM(1 + p.duplicates), 0) FROM packets p JOIN positions s ON s.packet = p.id "
             "WHERE s.cached = 1")


def test_firmware_2_8_replays_cached_positions_that_never_move_an_incident_nor_count_as_news(harness):
    h = harness("idle", "tcp", firmware="2.8")
    stage, amina = h.sim.stage, h.sim.stage.amina
    stage.send(amina.position(14.69370, -17.44410))                    # the radio remembers this fix
    stage.send(amina.text(f"SOS {rmc(14.70500, -17.45500, 1.7e9)}"))   # the alert's own, newer fix
    wait_until(lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state='delivered'") == 1, what="the receipt")
    [before] = h.rows("SELECT lat, lon, fix_source FROM incidents")
    heard = h.rows("SELECT last_heard, lat, lon FROM nodes WHERE num=?", (amina.num,))[0]
    radio = h.sim.radio
    for n in (2, 3):                                                   # two reconnects
        h.sim.transport.drop_client()
        wait_until(lambda: radio.handshakes == n and radio.client_ready.is_set(), 10, what=f"reconnect {n - 1}")
        wait_until(lambda: h.count(SIGHTINGS) == n - 1, 10, what="the replay")
    # The replay is stored once (its id is derived from the node and the fix's time), as history.
    assert h.count("SELECT COUNT(*) FROM positions WHERE cached=1") == 1
    assert tuple(h.rows("SELECT lat, lon, fix_source FROM incidents")[0]) == tuple(before)
    assert tuple(h.rows("SELECT last_heard, lat, lon FROM nodes WHERE num=?", (amina.num,))[0]) == tuple(heard)
    assert tuple(before)[2] == "nmea"
