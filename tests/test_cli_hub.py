"""`station hub broker-config` and `station hub status`, from the view of the technician who sets
up the NGO's broker (one account per station, a password file for each, TLS, the ACL) and of the
coordinator reading the hub at a terminal."""

from __future__ import annotations

import json
import stat

from click.testing import CliRunner

from station.cli import cli
from station.hub import merge, schema
from station.storage import db as dbmod
from tests.fakes.smtp import make_ca_and_server


def broker_config(tmp_path, out, *args: str):
    """`station hub broker-config OUT ARGS...` with a CA and a certificate of the test's own; the
    result and the certificate's path."""
    ca, cert, key = make_ca_and_server(tmp_path / "tls")
    result = CliRunner().invoke(cli, ["hub", "broker-config", str(out), *args, "--cert", str(cert), "--key", str(key),
                                      "--ca", str(ca)])
    return result, cert


def test_broker_config_writes_an_account_per_station_tls_only_and_the_acl(tmp_path):
    out = tmp_path / "broker"
    result, cert = broker_config(tmp_path, out, "--station", "kibera", "--station", "mathare")
    assert result.exit_code == 0, result.output
    conf = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and f"certfile {cert}" in conf and "listener 8883" in conf
    assert "user mosquitto" in conf and "persistence true" in conf
    acl = (out / "acl").read_text()
    assert "user kibera\ntopic write ngo/stations/kibera/events\ntopic read ngo/hub/to/kibera\n" in acl
    assert "user mathare\ntopic write ngo/stations/mathare/events\ntopic read ngo/hub/to/mathare\n" in acl
    assert "user hub\ntopic read ngo/stations/+/events\ntopic write ngo/hub/#" in acl
    assert "pattern" not in acl and "msh/" not in acl      # only the named accounts, no uplink without gateways
    users = [line.split(":")[0] for line in (out / "passwords").read_text().splitlines()]
    assert users == ["hub", "kibera", "mathare"]
    for name in users:
        p = out / f"{name}.password"
        assert stat.S_IMODE(p.stat().st_mode) == 0o600 and len(p.read_text().strip()) >= 24
        assert p.read_text().strip() not in (out / "passwords").read_text()      # stored hashed


def test_broker_config_refuses_a_station_named_like_the_hub_or_not_a_topic_word(tmp_path):
    for bad in ("hub", "Kibera Office", "a/b"):
        result, _ = broker_config(tmp_path, tmp_path / "b", "--station", bad)
        assert result.exit_code == 2, (bad, result.output)


def test_hub_status_lists_the_stations_and_each_alert_with_who_heard_it(tmp_path):
    db = dbmod.connect(tmp_path / "hub.db")
    schema.migrate(db)
    for station, local in (("kibera", 5), ("mathare", 9)):
        merge.apply(db, station, 1, "incident", 1000, {"incident": local, "node": 0xB5A1E001, "opened_at": 1000.0,
                                                       "source": "keyword", "packet_id": 7}, 1001, 600)
    merge.apply(db, "kibera", 2, "claim", 1002, {"incident": 5, "destination": "x"}, 1002, 600)
    db.conn.commit()
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[hub]\ndatabase = "{tmp_path / "hub.db"}"\n')
    data = json.loads(CliRunner().invoke(cli, ["--config", str(cfg), "hub", "status", "--json"]).output)
    assert [s["id"] for s in data["stations"]] == ["kibera", "mathare"]
    [alert] = data["alerts"]
    assert alert["node"] == "!b5a1e001" and alert["stations"] == "kibera, mathare" and alert["claims"] == "x: kibera"
    text = CliRunner().invoke(cli, ["--config", str(cfg), "hub", "status"]).output
    assert "HEARD BY" in text and "kibera, mathare" in text


def test_broker_config_for_a_rabbitmq_cluster_keeps_the_same_accounts_and_rules(tmp_path):
    """The technician whose NGO outgrew one mosquitto: the same command writes the four files each
    RabbitMQ node takes, with the same accounts, the same topic rules and sessions that survive a
    node and a week away."""
    import re

    from station.hub.rabbitmq import password_hash
    from station.network.mqtt import client_id
    out = tmp_path / "rabbit"
    result, cert = broker_config(tmp_path, out, "--station", "kibera", "--station", "mathare",
                                 "--rabbitmq", "rabbit@hub-a", "--rabbitmq", "rabbit@hub-b")
    assert result.exit_code == 0, result.output
    assert "/var/lib/rabbitmq/.erlang.cookie" in result.output
    conf = (out / "rabbitmq.conf").read_text()
    for line in ("listeners.tcp = none", "mqtt.listeners.tcp = none", "mqtt.listeners.ssl.default = 0.0.0.0:8883",
                 f"ssl_options.certfile = {cert}", "mqtt.allow_anonymous = false", "mqtt.durable_queue_type = quorum",
                 "mqtt.subscription_ttl = infinity", "definitions.local.path = /etc/rabbitmq/definitions.json",
                 "cluster_formation.classic_config.nodes.1 = rabbit@hub-a",
                 "cluster_formation.classic_config.nodes.2 = rabbit@hub-b"):
        assert line in conf.splitlines(), line
    assert (out / "enabled_plugins").read_text() == "[rabbitmq_mqtt].\n"
    assert stat.S_IMODE((out / "erlang.cookie").stat().st_mode) == 0o400
    defs = json.loads((out / "definitions.json").read_text())
    assert [u["name"] for u in defs["users"]] == ["hub", "kibera", "mathare"]
    topics = {t["user"]: (t["write"], t["read"]) for t in defs["topic_permissions"]}
    # RabbitMQ sees MQTT's ngo/stations/kibera/events as ngo.stations.kibera.events.
    assert re.fullmatch(topics["kibera"][0], "ngo.stations.kibera.events")
    assert not re.fullmatch(topics["kibera"][0], "ngo.stations.mathare.events")
    assert re.fullmatch(topics["kibera"][1], "ngo.hub.to.kibera") and not re.fullmatch(topics["kibera"][1], "ngo.hub.to.mathare")
    assert not re.fullmatch(topics["kibera"][0], "ngo.hub.to.mathare")
    assert re.fullmatch(topics["hub"][0], "ngo.hub.to.mathare") and re.fullmatch(topics["hub"][1], "ngo.stations.*.events")
    for user in defs["users"]:
        password = (out / f"{user['name']}.password").read_text().strip()
        assert password not in (out / "definitions.json").read_text()
        salt = __import__("base64").b64decode(user["password_hash"])[:4]
        assert user["password_hash"] == password_hash(password, salt)
        # Each account opens only its own session queue, named from its client id.
        [perm] = [p for p in defs["permissions"] if p["user"] == user["name"]]
        own = f"mqtt-subscription-{client_id(user['name'], password)}qos1"
        assert re.fullmatch(perm["configure"], own)
        assert not any(re.fullmatch(perm["configure"], f"mqtt-subscription-{other}qos1") for other in ("hub", "kibera"))


def test_broker_config_refuses_a_rabbitmq_node_that_is_not_name_at_host(tmp_path):
    result, _ = broker_config(tmp_path, tmp_path / "b", "--station", "kibera", "--rabbitmq", "hub-a")
    assert result.exit_code == 2 and "NAME@HOST" in result.output


def test_broker_config_gives_a_gateway_its_uplink_and_nothing_else(tmp_path):
    out = tmp_path / "broker"
    result, _ = broker_config(tmp_path, out, "--station", "kibera", "--gateway", "gw-office")
    assert result.exit_code == 0, result.output
    acl = (out / "acl").read_text()
    assert "user gw-office\ntopic write msh/2/e/#\n" in acl
    assert "user kibera\ntopic write ngo/stations/kibera/events\ntopic read ngo/hub/to/kibera\ntopic read msh/2/e/#" in acl
    assert acl.count("gw-office") == 1 and (out / "gw-office.password").exists()
    refused, _ = broker_config(tmp_path, tmp_path / "r", "--station", "kibera", "--gateway", "gw",
                               "--rabbitmq", "rabbit@a")
    assert refused.exit_code == 2 and "office's mosquitto" in refused.output
