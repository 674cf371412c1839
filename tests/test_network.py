"""Many stations, one network, from the view of the wearer (her SOS, heard by three stations, is one
alert and one post on the NGO's accounts, not three), of the office staff at each station (an
acknowledgement in one office silences the others within seconds), and of the adversary on the
network (a station's credentials cannot speak for another station or grant a claim; nothing
travels in clear).

A real mosquitto (Debian's package), configured as `station hub broker-config` writes it; three
stations on virtual radios; the hub in this process, on its own database."""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import time

import pytest

from station import config, incidents, registry
from station.hub.service import Hub
from station.storage.writer import Writer
from tests.broker import Mosquitto
from tests.conftest import wait_until
from tests.fakes.social import FakeX
from tests.relay.conftest import secret_files

STATIONS = ("kibera", "mathare", "korogocho")
AMINA = 0xB5A1E001


def _broker(tmp_path, **limits):
    import os
    import shutil
    if not shutil.which("mosquitto") and not os.environ.get("CI"):
        pytest.skip("mosquitto is not installed (sudo apt-get install mosquitto)")
    accounts = {"hub": "hub-secret", **{s: f"{s}-secret" for s in STATIONS}, "intruder": "intruder-secret",
                "gw-office": "gateway-secret"}
    mq = Mosquitto(tmp_path / "broker", accounts, gateways=("gw-office",), **limits).start()
    made = []

    def hub(**extra) -> Hub:
        cfg = config.validate({"hub": {"database": str(tmp_path / "hub.db"), "broker": mq.url,
                                       "password_file": mq.password_file("hub"), "ca_file": str(mq.ca), **extra}},
                              None, tmp_path)
        h = Hub(cfg).start()
        made.append(h)
        return h
    mq.hub = hub
    mq.made = made
    return mq


@pytest.fixture
def net(tmp_path):
    mq = _broker(tmp_path)
    yield mq
    for h in mq.made:
        h.stop()
    mq.stop()


@pytest.fixture
def tight_net(tmp_path):
    """A broker that keeps only a few messages for a client that is away."""
    mq = _broker(tmp_path, max_queued=5, max_inflight=2)
    yield mq
    for h in mq.made:
        h.stop()
    mq.stop()


def station(harness, net, name: str, **kw):
    h = harness("idle", network={"enabled": True, "broker": net.url, "station_id": name,
                                 "password_file": net.password_file(name), "ca_file": str(net.ca),
                                 "claim_wait_s": 30.0}, **kw)
    if h.station is not None:
        wait_until(lambda: h.station.network.link.connected, 15, what=f"{name} on the broker")
    return h


def publishing_to(h, x, files: dict) -> None:
    """The station (not started) posts to the fake X, and Amina consents to immediate publication."""
    h.cfg = h.cfg.with_overrides(
        relay={"probe_interval_s": 0.2, "offline_probe_interval_s": 0.05, "online_after": 1, "offline_after": 1},
        destinations=[{"name": "x", "kind": "x", "api_base_url": x.url, "timeout_s": 2.0,
                       **{k: files[k] for k in ("consumer_key_file", "consumer_secret_file", "access_token_file",
                                                "access_token_secret_file")}}])
    w = Writer(h.cfg.database_path).start()
    w.call(lambda db: registry.set_consent(db, AMINA, {"publish": "at-once", "name_mode": "pseudonym",
                                                       "pseudonym": "Defender A", "precision": "city"},
                                           "test", time.time()))
    w.stop()


def console(h, role: str):
    """The station's console, logged in as `role`."""
    from station import users
    from tests.web.test_console_security import PASSWORD, login
    from web.app import create_app
    w = Writer(h.cfg.database_path).start()
    w.call(lambda db: users.add(db, role, role, PASSWORD, time.time(), "test"))
    w.stop()
    app = create_app(h.cfg)
    app.config["TESTING"] = True
    c = app.test_client()
    login(c, role)
    return c


def hub_rows(hub: Hub, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(hub.writer.path) as db:
        return db.execute(sql, params).fetchall()


def heard_by_all(stations) -> None:
    """Amina presses once; the packet reaches every station's radio (the same sender, the same id)."""
    first = stations[0].sim.stage
    packets = first.people["amina"].press(first.clock)
    assert packets
    for h in stations:
        for p in packets:
            h.sim.stage.send(p, sender=h.sim.stage.people["amina"])


def local_alert(h) -> int:
    return wait_until(lambda: h.count("SELECT COALESCE(MAX(id), 0) FROM incidents WHERE node_num=?", (AMINA,)), 15,
                      what="the alert at the station")


def test_three_stations_hear_one_sos_and_the_hub_holds_one_alert_with_each_reception(harness, net):
    hub = net.hub()
    stations = [station(harness, net, s) for s in STATIONS]
    heard_by_all(stations)
    for h in stations:
        local_alert(h)
    wait_until(lambda: len(hub_rows(hub, "SELECT * FROM receptions")) == 3, 20, what="three receptions at the hub")
    [(hub_id, node, state)] = hub_rows(hub, "SELECT id, node_num, state FROM hub_incidents")
    assert (node, state) == (AMINA, "open")
    got = hub_rows(hub, "SELECT station, hub_incident, hops, heard_at IS NOT NULL FROM receptions ORDER BY station")
    assert [(s, i, heard) for s, i, _hops, heard in got] == [(s, hub_id, 1) for s in sorted(STATIONS)]
    # Each station's health: its radio, as its console shows it.
    wait_until(lambda: [json.loads(h)["radio"] for (h,) in hub_rows(hub, "SELECT health FROM stations ORDER BY id")]
               == ["connected"] * 3, 15, what="every station's health at the hub")
    # Every event arrived once: the queue at each station is empty and marked.
    for h in stations:
        wait_until(lambda h=h: h.count("SELECT COUNT(*) FROM network_queue WHERE published_at IS NULL") == 0, 10,
                   what="the station's queue to be published")


def test_an_acknowledgement_in_one_office_silences_the_other_rooms_within_seconds(harness, net):
    net.hub()
    stations = [station(harness, net, s) for s in STATIONS]
    heard_by_all(stations)
    ids = [local_alert(h) for h in stations]
    for h in stations:
        wait_until(lambda h=h: h.station.indicators.level == "open", 10, what="every room to ring")
    a = stations[0]
    a.station.writer.call(lambda db: incidents.acknowledge(db, ids[0], "Fatou", a.station.clock.now()))
    started = time.monotonic()
    for h, iid in zip(stations[1:], ids[1:]):
        wait_until(lambda h=h, iid=iid: h.count("SELECT state FROM incidents WHERE id=?", (iid,)) == "acknowledged",
                   15, what="the acknowledgement to reach the other station")
        assert h.rows("SELECT acknowledged_by FROM incidents WHERE id=?", (iid,))[0][0] == "Fatou at kibera"
        wait_until(lambda h=h: h.station.indicators.level == "acknowledged", 5, what="the buzzer there to stop")
    assert time.monotonic() - started < 15


def test_her_sos_heard_by_three_stations_is_posted_once_per_destination(harness, net, tmp_path):
    hub = net.hub()
    x = FakeX().up()
    try:
        files = secret_files(tmp_path)
        stations = []
        for s in STATIONS:
            h = station(harness, net, s, start=False)
            publishing_to(h, x, files)
            h.start()
            wait_until(lambda h=h: h.station.network.link.connected, 15, what="on the broker")
            stations.append(h)
        heard_by_all(stations)
        ids = [local_alert(h) for h in stations]
        wait_until(lambda: len(x.posts) == 1, 30, what="the one post")
        # The two others were told who holds the claim, and cancelled their rows.
        def rows():
            got = [h.rows("SELECT state, claim, reason FROM outbox WHERE incident_id=? AND kind='alert'", (iid,))
                   for h, iid in zip(stations, ids)]
            return [tuple(r[0]) if r else ("not planned yet", None, "") for r in got]
        states = wait_until(lambda: sorted(r[0] for r in rows()) == ["cancelled", "cancelled", "sent"] and rows(), 30,
                            what="one sent, the others standing down")
        [sent] = [s for s in states if s[0] == "sent"]
        assert sent[1] == "granted"
        assert all("the hub gave it the claim" in s[2] for s in states if s[0] == "cancelled")
        # The hub knows who posted it (its console shows it), and that two stood down.
        wait_until(lambda: sorted(r[0] for r in hub_rows(hub, "SELECT state FROM posts")) ==
                   ["cancelled", "cancelled", "sent"], 15, what="the posts at the hub")
        assert hub_rows(hub, "SELECT claim FROM posts WHERE state='sent'") == [("granted",)]
        assert len(x.posts) == 1
    finally:
        x.down()


def test_a_stations_credentials_cannot_publish_under_another_station_or_grant_a_claim(harness, net):
    """The intruder's account (a stolen station's password) writes an alert under kibera's topic and
    a claim answer to mathare: the broker's ACL drops both; the hub and mathare never see them."""
    import paho.mqtt.client as mqtt
    hub = net.hub()
    mathare = station(harness, net, "mathare")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="intruder", protocol=mqtt.MQTTv311)
    c.username_pw_set("intruder", "intruder-secret")
    c.tls_set(ca_certs=str(net.ca))
    c.connect("localhost", net.port)
    c.loop_start()
    try:
        forged = {"v": 1, "station": "kibera", "seq": 1, "kind": "incident", "at": time.time(),
                  "data": {"incident": 1, "node": AMINA, "opened_at": time.time(), "source": "keyword"}}
        c.publish("ngo/stations/kibera/events", json.dumps(forged), qos=1).wait_for_publish(5)
        c.publish("ngo/hub/to/mathare", json.dumps({"kind": "claim", "incident": 1, "destination": "x",
                                                    "granted": True, "holder": "mathare"}), qos=1).wait_for_publish(5)
        # Its own topic goes through: proof that the broker took its messages and the ACL chose.
        own = {"v": 1, "station": "intruder", "seq": 1, "kind": "hello", "at": time.time(), "data": {}}
        c.publish("ngo/stations/intruder/events", json.dumps(own), qos=1).wait_for_publish(5)
    finally:
        c.loop_stop()
        c.disconnect()
    wait_until(lambda: hub_rows(hub, "SELECT id FROM stations WHERE id='intruder'"), 10, what="its own event")
    assert hub_rows(hub, "SELECT COUNT(*) FROM hub_incidents")[0][0] == 0
    assert ("kibera",) not in hub_rows(hub, "SELECT id FROM stations")
    assert mathare.count("SELECT COUNT(*) FROM network_claims") == 0


def test_a_gateways_password_taken_on_the_lan_cannot_speak_as_a_station(net):
    """A Meshtastic gateway's TLS does not check the broker's certificate, so its password can be
    taken on the office LAN. With it, someone writes alerts as a station of its own name and as
    kibera: the hub sees neither, while a station's own event goes through as the control."""
    import paho.mqtt.client as mqtt
    hub = net.hub()
    wait_until(lambda: hub.link.connected, 15, what="the hub")

    def client(account: str, password: str) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=account, protocol=mqtt.MQTTv311)
        c.username_pw_set(account, password)
        c.tls_set(ca_certs=str(net.ca))
        c.connect("localhost", net.port)
        c.loop_start()
        return c
    forged = {"v": 1, "seq": 1, "kind": "incident", "at": time.time(),
              "data": {"incident": 1, "node": AMINA, "opened_at": time.time(), "source": "keyword"}}
    gw = client("gw-office", "gateway-secret")
    try:
        for topic in ("ngo/stations/gw-office/events", "ngo/stations/kibera/events"):
            gw.publish(topic, json.dumps(forged), qos=1).wait_for_publish(5)
    finally:
        gw.loop_stop()
        gw.disconnect()
    own = client("intruder", "intruder-secret")
    try:
        hello = {"v": 1, "seq": 1, "kind": "hello", "at": time.time(), "data": {}}
        own.publish("ngo/stations/intruder/events", json.dumps(hello), qos=1).wait_for_publish(5)
    finally:
        own.loop_stop()
        own.disconnect()
    wait_until(lambda: hub_rows(hub, "SELECT id FROM stations WHERE id='intruder'"), 10, what="the control event")
    assert hub_rows(hub, "SELECT id FROM stations") == [("intruder",)]
    assert hub_rows(hub, "SELECT COUNT(*) FROM hub_incidents")[0][0] == 0


def test_a_stations_credentials_cannot_take_over_the_hubs_session(harness, net):
    """Someone holding a seized station's password connects with the hub's client id: while the
    hub is away, to read what the broker keeps for it; while it is there, to knock it off. The
    broker gives that account its own session only; the hub keeps its connection and finds every
    event waiting."""
    import paho.mqtt.client as mqtt
    hub = net.hub()
    kibera = station(harness, net, "kibera")
    wait_until(lambda: hub.link.connected, 15, what="the hub on the broker")
    hub.stop()
    net.made.remove(hub)
    kibera.sim.stage.press("amina")
    local_alert(kibera)
    wait_until(lambda: kibera.count("SELECT COUNT(*) FROM network_queue WHERE published_at IS NULL") == 0, 15,
               what="the broker to keep the alert for the hub")
    seen, sessions = [], []
    thief = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hub", clean_session=False,
                        protocol=mqtt.MQTTv311)
    thief.username_pw_set("intruder", "intruder-secret")
    thief.tls_set(ca_certs=str(net.ca))
    thief.on_connect = lambda c, u, flags, rc, p: sessions.append(flags.session_present)
    thief.on_message = lambda c, u, msg: seen.append(msg.topic)
    thief.connect("localhost", net.port)
    thief.loop_start()
    try:
        wait_until(lambda: sessions, 10, what="the thief's connection")
        assert sessions == [False]                  # not the hub's session: nothing of it is given
        again = net.hub()
        wait_until(lambda: len(hub_rows(again, "SELECT * FROM receptions")) == 1, 20, what="the kept alert")
        # The thief connects again with the hub's id while the hub is there: the hub stays.
        connects = again.link.connects
        thief.reconnect()
        wait_until(lambda: len(sessions) == 2, 10, what="the thief's second connection")
        kibera.sim.stage.press("bashir")
        wait_until(lambda: len(hub_rows(again, "SELECT * FROM receptions")) == 2, 20, what="the next alert")
        assert again.link.connected and again.link.connects == connects
    finally:
        thief.loop_stop()
        thief.disconnect()
    assert seen == []


def test_nothing_travels_in_clear_and_a_wrong_password_is_refused(net):
    with pytest.raises((ConnectionError, OSError, ssl.SSLError)):
        s = socket.create_connection(("localhost", net.port), 3)
        # An MQTT CONNECT in clear: the TLS listener takes it for a broken handshake and closes.
        s.sendall(bytes.fromhex("101000044d5154540402003c0004746573740000"))
        if not s.recv(10):
            raise ConnectionError("closed")
    import paho.mqtt.client as mqtt
    refused = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="guess", protocol=mqtt.MQTTv311)
    c.username_pw_set("kibera", "guessed")
    c.tls_set(ca_certs=str(net.ca))
    c.on_connect = lambda client, userdata, flags, rc, props: refused.append(rc.is_failure)
    c.connect("localhost", net.port)
    c.loop_start()
    try:
        wait_until(lambda: refused, 10, what="the broker's answer")
    finally:
        c.loop_stop()
    assert refused == [True]


def test_with_the_hub_unreachable_the_station_posts_alone_and_the_console_says_so(harness, net, tmp_path):
    """No hub answers the claim: a wearer who consented is published all the same once
    claim_wait_s has passed, and the alert's page says the post went without the hub's claim."""
    x = FakeX().up()
    try:
        files = secret_files(tmp_path)
        h = harness("idle", start=False, network={
            "enabled": True, "broker": net.url, "station_id": "kibera", "password_file": net.password_file("kibera"),
            "ca_file": str(net.ca), "claim_wait_s": 2.0})
        publishing_to(h, x, files)
        h.start()
        h.sim.stage.press("amina")
        iid = local_alert(h)
        wait_until(lambda: len(x.posts) == 1, 30, what="the post, alone")
        wait_until(lambda: h.count("SELECT MAX(state) FROM outbox WHERE incident_id=? AND kind='alert'", (iid,)) == "sent",
                   10, what="the row marked sent")
        [(claim,)] = h.rows("SELECT claim FROM outbox WHERE incident_id=? AND kind='alert'", (iid,))
        assert claim == "alone" and len(x.posts) == 1
        c = console(h, "coordinator")
        assert "posted without the hub&#39;s claim" in c.get(f"/alerts/{iid}").get_data(as_text=True)
    finally:
        x.down()


def test_the_broker_down_for_a_while_mid_stream_loses_nothing_and_applies_nothing_twice(harness, net):
    hub = net.hub()
    kibera = station(harness, net, "kibera")
    kibera.sim.stage.press("amina")
    first = local_alert(kibera)
    wait_until(lambda: len(hub_rows(hub, "SELECT * FROM receptions")) == 1, 15, what="the first alert at the hub")
    net.stop()
    # Alone meanwhile: the room still rings, the wearer's alerts are stored and queued.
    for name in ("bashir", "chen"):
        kibera.sim.stage.clock += 60
        kibera.sim.stage.press(name) if name == "bashir" else kibera.sim.stage.act(
            kibera.sim.stage.people[name], [kibera.sim.stage.people[name].text("SOS")])
    wait_until(lambda: kibera.count("SELECT COUNT(*) FROM incidents") == 3, 15, what="two alerts while it is down")
    assert kibera.count("SELECT COUNT(*) FROM network_queue WHERE published_at IS NULL") >= 2
    kibera.station.writer.call(lambda db: incidents.acknowledge(db, first, "Fatou", kibera.station.clock.now()))
    net.start()
    wait_until(lambda: len(hub_rows(hub, "SELECT * FROM receptions")) == 3, 60, what="the backlog at the hub")
    wait_until(lambda: hub_rows(hub, "SELECT state FROM hub_incidents ORDER BY id")[0] == ("acknowledged",), 15,
               what="the acknowledgement made while the broker was down")
    # Every event arrived once (the newest health only: older ones were superseded while waiting).
    events = kibera.count("SELECT COUNT(*) FROM network_queue WHERE kind != 'health'")
    wait_until(lambda: hub_rows(hub, "SELECT COUNT(*) FROM applied WHERE station='kibera'")[0][0] >= events, 15,
               what="every event applied")
    assert hub_rows(hub, "SELECT COUNT(*) FROM hub_incidents")[0][0] == 3


def test_overlapping_traffic_is_one_alert_only_where_the_same_packet_was_heard(harness, net):
    hub = net.hub()
    kibera, mathare = station(harness, net, "kibera"), station(harness, net, "mathare")
    heard_by_all([kibera, mathare])                     # Amina, between the two offices
    kibera.sim.stage.press("bashir")                    # Bashir, near Kibera only
    chen = mathare.sim.stage.people["chen"]
    mathare.sim.stage.act(chen, [chen.text("SOS")])     # Chen, near Mathare only
    wait_until(lambda: len(hub_rows(hub, "SELECT * FROM receptions")) == 4, 20, what="four receptions")
    got = hub_rows(hub, "SELECT i.node_num, COUNT(r.station) FROM hub_incidents i JOIN receptions r "
                        "ON r.hub_incident = i.id GROUP BY i.id ORDER BY i.node_num")
    assert got == [(AMINA, 2), (0xB5A1E002, 1), (0xB5A1E003, 1)]


def test_the_hub_down_for_a_while_finds_every_event_waiting_in_its_session(harness, net):
    """The hub is restarted (an upgrade, a crash): the broker keeps what the stations said meanwhile
    in the hub's persistent session, and the hub applies each once when it is back."""
    hub = net.hub()
    kibera = station(harness, net, "kibera")
    kibera.sim.stage.press("amina")
    local_alert(kibera)
    wait_until(lambda: len(hub_rows(hub, "SELECT * FROM receptions")) == 1, 15, what="the first alert")
    hub.stop()
    net.made.remove(hub)
    kibera.sim.stage.press("bashir")
    wait_until(lambda: kibera.count("SELECT COUNT(*) FROM incidents") == 2, 15, what="an alert while the hub is down")
    # Published to the broker (its PUBACK came), though no hub is there to read it.
    wait_until(lambda: kibera.count("SELECT COUNT(*) FROM network_queue WHERE published_at IS NULL") == 0, 15,
               what="the broker to take it")
    again = net.hub()
    wait_until(lambda: len(hub_rows(again, "SELECT * FROM receptions")) == 2, 20, what="the event kept for the hub")
    assert hub_rows(again, "SELECT COUNT(*) FROM hub_incidents")[0][0] == 2


def test_the_station_console_says_whether_it_reaches_the_hub_and_what_waits(harness, net):
    h = station(harness, net, "kibera")
    c = console(h, "viewer")
    wait_until(lambda: "connected as kibera" in c.get("/health").get_data(as_text=True), 10, what="the hub row")
    net.stop()                                           # the broker goes away
    wait_until(lambda: "NOT CONNECTED" in c.get("/health").get_data(as_text=True), 20, what="the hub row to say so")
    net.start()


def test_events_the_broker_dropped_for_an_absent_hub_are_sent_again_once_it_confirms_later_ones(harness, tight_net):
    """The hub was away longer than the broker would keep its messages: the broker acknowledged
    every event to the station and dropped most of them for the hub. The hub confirms what it
    applies; the station sees the gap below what was confirmed and sends it again."""
    net = tight_net
    hub = net.hub()
    kibera = station(harness, net, "kibera")
    kibera.station.network.resend_grace_s = 1.0
    hub.stop()
    net.made.remove(hub)
    now = time.time()
    kibera.station.writer.call(lambda db: [db.execute(
        "INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust) "
        "VALUES (?,?,?,'keyword','open','unregistered')", (0x20000000 + k, now, now)) for k in range(30)])
    wait_until(lambda: kibera.count("SELECT COUNT(*) FROM network_queue WHERE published_at IS NULL") == 0, 15,
               what="the broker to acknowledge every event")
    again = net.hub()
    kibera.sim.stage.press("amina")                     # life goes on: a newer event, confirmed
    wait_until(lambda: hub_rows(again, "SELECT COUNT(*) FROM receptions")[0][0] == 31, 60,
               what="every alert at the hub, the dropped ones sent again")
    assert hub_rows(again, "SELECT COUNT(*) FROM hub_incidents")[0][0] == 31
    assert kibera.station.network.publisher.resent > 0
    wait_until(lambda: kibera.count("SELECT COUNT(*) FROM network_queue WHERE confirmed_at IS NULL "
                                    "AND kind != 'health'") == 0, 15, what="every event confirmed")
