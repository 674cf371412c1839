"""The broker's configuration for a larger NGO network, as a RabbitMQ cluster (Debian's
rabbitmq-server 3.10, its MQTT plugin) instead of one mosquitto: the same file on every node, the
same accounts and the same rules as broker.py gives mosquitto, in RabbitMQ's terms:

- MQTT over TLS only (no plain MQTT or AMQP listener), no anonymous client;
- a station writes only `<root>/stations/<its account>/events` and reads only
  `<root>/hub/to/<its account>` (topic permissions on amq.topic, where RabbitMQ maps MQTT's `/` to
  `.`); the hub alone writes under `<root>/hub/`;
- each account may declare and read only its own session queue (`mqtt-subscription-<id>qos1`,
  its client id being its name and a tag from its password, network/mqtt.py): another account's
  credentials cannot read what waits for the hub, nor name the hub's id to knock it off;
- persistent sessions in quorum queues, replicated on every node, so the loss of one node of three
  loses no session and nothing queued in it; and never expired (RabbitMQ's own default drops a
  session after 24 hours, when the issue asks for a station away for a week);
- the nodes find each other from the list given (classic_config) and form the cluster at first
  boot; accounts come from definitions.json, loaded at boot (hashed passwords, no command line).

Two things this file does not do: the nodes' Erlang distribution (their cluster traffic, on port
25672 and epmd's 4369) is authenticated by the cookie but not encrypted, so it belongs on a private
network or behind RabbitMQ's inter-node TLS; and the stations reach the cluster through one name
(a load balancer or DNS over the nodes), since a station's [network] broker is one address."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from pathlib import Path

from station.network.mqtt import client_id

CONF = """# Written by `station hub broker-config --rabbitmq`: the same on every node of the cluster.
listeners.tcp = none
mqtt.listeners.tcp = none
mqtt.listeners.ssl.default = {bind}:{port}
ssl_options.cacertfile = {ca}
ssl_options.certfile = {cert}
ssl_options.keyfile = {key}
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
mqtt.allow_anonymous = false
mqtt.vhost = /
mqtt.exchange = amq.topic
# Sessions (clean_session off) in quorum queues, on every node, kept however long a client is away.
mqtt.durable_queue_type = quorum
mqtt.subscription_ttl = infinity
mqtt.prefetch = 100
definitions.import_backend = local_filesystem
definitions.local.path = {definitions}
definitions.skip_if_unchanged = true
cluster_formation.peer_discovery_backend = classic_config
{nodes}
# A node cut off from the others stops serving rather than keep its own diverging sessions.
cluster_partition_handling = pause_minority
"""


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _session(account: str) -> str:
    # The MQTT plugin's queue for a client's QoS 0 and QoS 1 subscriptions.
    return rf"mqtt-subscription-{re.escape(account)}qos[01]"


def definitions(accounts: dict[str, str], *, root: str = "ngo", hub: str = "hub") -> dict:
    users, permissions, topics = [], [], []
    r = re.escape(root)
    for name, password in accounts.items():
        users.append({"name": name, "password_hash": password_hash(password),
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []})
        own = _session(client_id(name, password))
        permissions.append({"user": name, "vhost": "/", "configure": f"^{own}$",
                            "write": rf"^(amq\.topic|{own})$", "read": rf"^(amq\.topic|{own})$"})
        if name == hub:
            write, read = rf"^{r}\.hub\..+$", rf"^{r}\.stations\.[^.]+\.events$"
        else:
            n = re.escape(name)
            write, read = rf"^{r}\.stations\.{n}\.events$", rf"^{r}\.hub\.to\.{n}$"
        topics.append({"user": name, "vhost": "/", "exchange": "amq.topic", "write": write, "read": read})
    return {"rabbit_version": "3.10.8", "users": users, "vhosts": [{"name": "/"}], "permissions": permissions,
            "topic_permissions": topics}


def write(folder: Path, *, accounts: dict[str, str], nodes: list[str], cert: Path, key: Path, ca: Path,
          port: int = 8883, bind: str = "0.0.0.0", root: str = "ngo", hub: str = "hub",
          installed_in: Path | None = None) -> Path:
    """rabbitmq.conf, enabled_plugins, definitions.json and a new erlang.cookie in `folder` (copy all
    four to every node: to `installed_in`, /etc/rabbitmq/ as Debian has it, which the conf names;
    the cookie to /var/lib/rabbitmq/.erlang.cookie); the conf's path. `nodes` are the cluster's
    node names, rabbit@HOST; the certificate paths must hold on every node."""
    for node in nodes:
        if not re.fullmatch(r"[A-Za-z0-9_-]+@[A-Za-z0-9.-]+", node):
            raise ValueError(f"a RabbitMQ node is NAME@HOST, found {node!r}")
    folder.mkdir(parents=True, exist_ok=True)
    defs = folder / "definitions.json"
    defs.write_text(json.dumps(definitions(accounts, root=root, hub=hub), indent=1) + "\n")
    defs.chmod(0o600)
    (folder / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
    cookie = folder / "erlang.cookie"
    if not cookie.exists():
        # The nodes' shared secret; an existing one is kept so that a rewrite keeps the cluster.
        fd = os.open(cookie, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(20).upper())
    conf = folder / "rabbitmq.conf"
    conf.write_text(CONF.format(
        bind=bind, port=port, ca=ca, cert=cert, key=key, definitions=(installed_in or folder) / defs.name,
        nodes="\n".join(f"cluster_formation.classic_config.nodes.{i} = {n}" for i, n in enumerate(nodes, 1))))
    return conf
