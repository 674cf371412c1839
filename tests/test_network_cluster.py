"""The same stations and hub, unchanged, on a clustered broker: a real three-node RabbitMQ cluster
(Debian's rabbitmq-server 3.10 and its MQTT plugin), configured as `station hub broker-config
--rabbitmq` writes it, each client behind one address that leads to the first live node.

From the view of the NGO that outgrew one mosquitto: the wearer's SOS heard by three stations on
three nodes is still one alert and one post, an acknowledgement still silences the other rooms,
and a node killed mid-stream (the one holding the hub's connection) loses nothing and applies
nothing twice. From the adversary's: a seized station's password still cannot speak for another
station, grant a claim, or read what waits for the hub."""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest

from station import config, incidents
from station.hub.service import Hub
from tests import rabbitmq
from tests.conftest import wait_until
from tests.fakes.social import FakeX
from tests.relay.conftest import secret_files
from tests.test_network import AMINA, STATIONS, heard_by_all, hub_rows, local_alert, publishing_to, station

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path):
    if not rabbitmq.installed():
        if os.environ.get("CI"):
            pytest.fail("rabbitmq-server is not installed; .ci/run installs it")
        pytest.skip("rabbitmq-server is not installed (sudo apt-get install rabbitmq-server)")
    accounts = {"hub": "hub-secret", **{s: f"{s}-secret" for s in STATIONS}, "intruder": "intruder-secret"}
    rc = rabbitmq.RabbitCluster(tmp_path / "rabbit", accounts).start()
    balancers: list[rabbitmq.Balancer] = []
    made: list[Hub] = []

    def via(first: int) -> SimpleNamespace:
        """One address for a client, leading to node `first` while it lives, then to the next."""
        order = rc.ports[first:] + rc.ports[:first]
        lb = rabbitmq.Balancer(order)
        balancers.append(lb)
        return SimpleNamespace(url=lb.url, password_file=rc.password_file, ca=rc.ca, port=lb.port)

    def hub(first: int) -> Hub:
        at = via(first)
        cfg = config.validate({"hub": {"database": str(tmp_path / "hub.db"), "broker": at.url,
                                       "password_file": rc.password_file("hub"), "ca_file": str(rc.ca)}}, None, tmp_path)
        h = Hub(cfg).start()
        made.append(h)
        wait_until(lambda: h.link.connected, 30, what="the hub on the cluster")
        return h
    rc.via, rc.hub = via, hub
    try:
        # Three nodes of one cluster, as they found each other from the list of peers.
        assert len(wait_until(lambda: len(rc.running()) == 3 and rc.running(), 60, what="the cluster")) == 3
        yield rc
    finally:
        for h in made:
            h.stop()
        for lb in balancers:
            lb.close()
        rc.stop()


def test_three_stations_on_three_nodes_post_once_share_acknowledgements_and_survive_a_node_killed(
        harness, cluster, tmp_path):
    hub = cluster.hub(2)
    x = FakeX().up()
    try:
        files = secret_files(tmp_path)
        stations = []
        for i, name in enumerate(STATIONS):
            h = station(harness, cluster.via(i), name, start=False)
            publishing_to(h, x, files)
            h.start()
            wait_until(lambda h=h: h.station.network.link.connected, 60, what=f"{name} on the cluster")
            stations.append(h)
        kibera, mathare, korogocho = stations

        # One SOS, heard by the three stations on three nodes: one alert at the hub, three receptions.
        heard_by_all(stations)
        ids = [local_alert(h) for h in stations]
        wait_until(lambda: len(hub_rows(hub, "SELECT * FROM receptions")) == 3, 30, what="three receptions")
        assert hub_rows(hub, "SELECT node_num FROM hub_incidents") == [(AMINA,)]

        # Posted once across the network: the hub's claim went to one station, the others stood down.
        wait_until(lambda: len(x.posts) == 1, 60, what="the one post")
        wait_until(lambda: sorted(r[0] for r in hub_rows(hub, "SELECT state FROM posts")) ==
                   ["cancelled", "cancelled", "sent"], 60, what="the two others standing down")
        assert len(x.posts) == 1

        # Fatou acknowledges at kibera: the rooms at mathare and korogocho fall silent.
        kibera.station.writer.call(lambda db: incidents.acknowledge(db, ids[0], "Fatou", kibera.station.clock.now()))
        for h, iid in ((mathare, ids[1]), (korogocho, ids[2])):
            wait_until(lambda h=h, iid=iid: h.count("SELECT state FROM incidents WHERE id=?", (iid,)) == "acknowledged",
                       30, what="the acknowledgement at the other station")
            assert h.rows("SELECT acknowledged_by FROM incidents WHERE id=?", (iid,))[0][0] == "Fatou at kibera"

        # The third node dies (kill -9) with the hub's and korogocho's connections on it, while
        # alerts keep coming at kibera and at korogocho.
        hub_connects, korogocho_connects = hub.link.connects, korogocho.station.network.link.connects
        cluster.kill(2)
        kibera.sim.stage.press("bashir")
        korogocho.sim.stage.press("chen")
        for h in (kibera, korogocho):
            wait_until(lambda h=h: h.count("SELECT COUNT(*) FROM incidents") == 2, 15, what="the new alert locally")
        wait_until(lambda: len(hub_rows(hub, "SELECT * FROM receptions")) == 5, 90,
                   what="both new alerts at the hub, through the surviving nodes")
        assert hub.link.connects > hub_connects and korogocho.station.network.link.connects > korogocho_connects
        assert hub_rows(hub, "SELECT COUNT(*) FROM hub_incidents")[0][0] == 3
        # Every station's every event applied once: what each queued, the hub holds, no more.
        for name, h in zip(STATIONS, stations):
            wait_until(lambda h=h: h.count("SELECT COUNT(*) FROM network_queue WHERE confirmed_at IS NULL") == 0,
                       90, what=f"{name}'s events all confirmed by the hub")
            queued = {s for (s,) in h.rows("SELECT seq FROM network_queue")}
            applied = {s for (s,) in hub_rows(hub, "SELECT seq FROM applied WHERE station=?", (name,))}
            assert queued <= applied
        assert len(x.posts) == 1
    finally:
        x.down()


def test_on_the_cluster_a_seized_stations_password_cannot_forge_claim_or_read_the_hubs_session(harness, cluster):
    hub = cluster.hub(0)
    mathare = station(harness, cluster.via(1), "mathare", start=False)
    mathare.start()
    wait_until(lambda: mathare.station.network.link.connected, 60, what="mathare on the cluster")
    wait_until(lambda: hub.link.connected, 30, what="the hub")
    at = cluster.via(2)
    refusals, sessions, seen = [], [], []

    def client(client_id: str) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                        protocol=mqtt.MQTTv311)
        c.username_pw_set("intruder", "intruder-secret")
        c.tls_set(ca_certs=str(at.ca))
        c.on_connect = lambda cl, u, flags, rc, p: sessions.append((client_id, flags.session_present, str(rc)))
        c.on_disconnect = lambda cl, u, flags, rc, p: refusals.append((client_id, str(rc)))
        c.on_message = lambda cl, u, msg: seen.append(msg.topic)
        c.connect("localhost", at.port)
        c.loop_start()
        return c

    # Its own topic goes through: proof that the cluster took its messages and the rules chose.
    own = client("intruder")
    try:
        wait_until(lambda: sessions, 30, what="the intruder's own connection")
        hello = {"v": 1, "station": "intruder", "seq": 1, "kind": "hello", "at": time.time(), "data": {}}
        own.publish("ngo/stations/intruder/events", json.dumps(hello), qos=1).wait_for_publish(10)
        wait_until(lambda: hub_rows(hub, "SELECT id FROM stations WHERE id='intruder'"), 30, what="its own event")
        # An alert under kibera's topic and a claim for mathare: RabbitMQ refuses each by closing
        # the connection (mosquitto drops them silently); neither the hub nor mathare sees them.
        forged = {"v": 1, "station": "kibera", "seq": 1, "kind": "incident", "at": time.time(),
                  "data": {"incident": 1, "node": AMINA, "opened_at": time.time(), "source": "keyword"}}
        own.publish("ngo/stations/kibera/events", json.dumps(forged), qos=1)
        wait_until(lambda: refusals, 30, what="the cluster to refuse the forged alert")
    finally:
        own.loop_stop()
        own.disconnect()
    claim = {"kind": "claim", "incident": 1, "destination": "x", "granted": True, "holder": "mathare"}
    forger = client("forger")
    try:
        wait_until(lambda: len(sessions) >= 2, 30, what="the second connection")
        forger.publish("ngo/hub/to/mathare", json.dumps(claim), qos=1)
        wait_until(lambda: any(c == "forger" for c, _ in refusals), 30, what="the forged claim refused")
    finally:
        forger.loop_stop()
        forger.disconnect()
    # With the hub's name as client id, to take over its session or knock it off: the hub's id
    # carries a tag only its password gives (network/mqtt.py), so the thief gets an empty session
    # of its own, and the hub keeps its connection. Before that tag, RabbitMQ closed the hub's
    # connection for the newcomer, and a thief reconnecting in a loop kept the hub off.
    connects = hub.link.connects
    thief = client("hub")
    try:
        wait_until(lambda: any(c == "hub" for c, _, _ in sessions), 30, what="the thief's answer")
    finally:
        thief.loop_stop()
        thief.disconnect()
    assert not any(present for c, present, _ in sessions)
    mathare.sim.stage.press("amina")
    local_alert(mathare)
    wait_until(lambda: hub_rows(hub, "SELECT COUNT(*) FROM receptions WHERE station='mathare'")[0][0] == 1, 30,
               what="mathare's alert at the hub, which is still there")
    assert hub.link.connected and hub.link.connects == connects
    assert ("kibera",) not in hub_rows(hub, "SELECT id FROM stations")
    assert hub_rows(hub, "SELECT COUNT(*) FROM receptions")[0][0] == 1
    assert mathare.count("SELECT COUNT(*) FROM network_claims") == 0
    assert seen == []
