"""The broker's configuration for the NGO's network, written for Debian's mosquitto (2.0): TLS only,
no anonymous client, one account per station and one for the hub, and the ACL that makes the
topics mean who sent them:

- a station writes only `<root>/stations/<its account>/events` and reads only
  `<root>/hub/to/<its account>`: it cannot speak for another station, nor grant itself a claim;
- the hub reads every station's events and alone writes under `<root>/hub/`;
- a Meshtastic gateway (`--gateway`) writes only its uplink, `msh/2/e/...`, which the stations
  read ([uplink]): a gateway's password (its TLS does not check the broker's certificate) opens
  nothing else, not even a station's topics.

Persistent sessions and QoS 1 messages are kept on disk (`persistence`), so a station away for a
week finds what the hub told it, and the hub what the stations said, after a broker restart. The
same accounts and rules, in RabbitMQ's terms, make a cluster's configuration (rabbitmq.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ACL_HEAD = """# Written by `station hub broker-config`: who may read and write which topic. Only the
# accounts named here may do anything.
# The hub reads every station's events and alone writes what stations are told.
user {hub}
topic read {root}/stations/+/events
topic write {root}/hub/#
"""

# Each station (its account name is its station id) writes only its own events and reads only
# what the hub tells it, and the Meshtastic uplink when there are gateways.
ACL_STATION = """
user {name}
topic write {root}/stations/{name}/events
topic read {root}/hub/to/{name}
"""

# A Meshtastic gateway (a radio with its MQTT module on) writes its uplink, and nothing else.
ACL_GATEWAY = """
user {name}
topic write {uplink_root}/2/e/#
"""


def acl(accounts, *, root: str, hub: str, gateways: tuple[str, ...] = (), uplink_root: str = "msh") -> str:
    text = ACL_HEAD.format(hub=hub, root=root)
    for name in accounts:
        if name == hub or name in gateways:
            continue
        text += ACL_STATION.format(name=name, root=root)
        if gateways:
            text += f"topic read {uplink_root}/2/e/#\n"
    for name in gateways:
        text += ACL_GATEWAY.format(name=name, uplink_root=uplink_root)
    return text


CONF = """# Written by `station hub broker-config`.
{user}per_listener_settings false
allow_anonymous false
password_file {passwords}
acl_file {acl}
persistence true
persistence_location {data}/
autosave_interval 10
# What the broker keeps for a client that is away (the hub down, a station offline). Beyond it
# mosquitto drops the newest; the stations send again what the hub never confirmed.
max_queued_messages {max_queued}
max_inflight_messages {max_inflight}
log_type error
log_type warning
log_type notice

listener {port} {bind}
cafile {ca}
certfile {cert}
keyfile {key}
tls_version tlsv1.2
# A client's id is its account name, whatever it asks for: another account's credentials (a
# seized station) cannot take over the hub's persistent session, read what waits in it or keep
# disconnecting the hub by connecting with its id. (A listener's option in mosquitto 2.0.)
use_username_as_clientid true
"""


def write(folder: Path, *, accounts: dict[str, str], cert: Path, key: Path, ca: Path, port: int = 8883,
          bind: str = "0.0.0.0", root: str = "ngo", hub: str = "hub", user: str | None = None,
          max_queued: int = 100_000, max_inflight: int = 100, gateways: tuple[str, ...] = (),
          uplink_root: str = "msh") -> Path:
    """mosquitto.conf, the ACL and the hashed password file in `folder`; the conf's path.
    `gateways` are accounts (in `accounts`) that may write the Meshtastic uplink under
    `uplink_root`, which the stations may then read."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    passwords, acl_file = folder / "passwords", folder / "acl"
    passwords.write_text("")
    passwords.chmod(0o600)
    for name, password in accounts.items():
        # mosquitto_passwd hashes it (PBKDF2-SHA512); -b takes it from the command line, so it is run
        # here, not typed by someone into a shell history.
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), name, password], check=True,
                       capture_output=True, text=True)
    acl_file.write_text(acl(accounts, root=root, hub=hub, gateways=gateways, uplink_root=uplink_root))
    conf = folder / "mosquitto.conf"
    # `user`: whom mosquitto runs as once started as root (Debian's unit: mosquitto, who must own
    # these files); None leaves mosquitto's default.
    conf.write_text(CONF.format(passwords=passwords, acl=acl_file, data=data, port=port, bind=bind, ca=ca, cert=cert,
                                key=key, user=f"user {user}\n" if user else "", max_queued=max_queued,
                                max_inflight=max_inflight))
    return conf
