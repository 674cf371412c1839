"""One MQTT connection, as the station and the hub both use it (paho-mqtt 2, MQTT 3.1.1): TLS with
the broker's certificate checked, one account per station, a persistent session (clean_session
off, a fixed client id) so that what the broker holds for us while we are away is delivered when we
come back, QoS 1 both ways. Nothing here is specific to mosquitto: the same code runs on a
three-node RabbitMQ cluster (tests/test_network_cluster.py), whose session, QoS and ACL semantics
come from the same MQTT standard.

paho retransmits an unacknowledged publish itself after a reconnection within this process; what a
process that died had not seen acknowledged is sent again by its owner from its durable queue, and
the receiver applies each message once by its sequence number."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import ssl
import threading
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    username: str
    password: str
    ca_file: str | None
    keepalive_s: int = 30

    @staticmethod
    def parse(url: str) -> tuple[str, int]:
        m = re.fullmatch(r"mqtts://([^:/\s]+)(?::(\d{1,5}))?", url)
        if not m:
            raise ValueError(f"a broker is mqtts://HOST:PORT, found {url!r}")
        return m.group(1), int(m.group(2) or 8883)


def client_id(username: str, password: str) -> str:
    """The client id an account connects with: its name and a tag only its password gives. A broker
    closes a connection when another opens with the same id, whatever the account (RabbitMQ 3.10
    does so before it refuses the newcomer), so a seized station's password must not be enough to
    name the hub's id and keep knocking it off. mosquitto replaces the id by the account name
    itself (use_username_as_clientid, hub/broker.py)."""
    tag = hmac.new(password.encode(), b"station mqtt client id", hashlib.sha256).hexdigest()[:16]
    return f"{username}-{tag}"


class MqttLink:
    def __init__(self, broker: Broker, client_id: str, *, subscriptions: list[str],
                 # on_message(topic, payload, ack): calls ack() once the message is stored (or judged
                 # garbage), from any thread; a message never acknowledged comes again.
                 on_message: Callable[[str, bytes, Callable[[], None]], None],
                 on_state: Callable[[bool], None] = lambda up: None):
        import paho.mqtt.client as mqtt
        self.broker = broker
        self.subscriptions = subscriptions
        self.on_message = on_message
        self.on_state = on_state
        self.connected = False
        self.error = "not connected yet"
        self.connects = 0
        self._lock = threading.Lock()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                        protocol=mqtt.MQTTv311)
        c.username_pw_set(broker.username, broker.password)
        ctx = ssl.create_default_context(cafile=broker.ca_file or None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        c.tls_set_context(ctx)
        c.reconnect_delay_set(1, 30)
        c.max_inflight_messages_set(50)
        # A message is acknowledged to the broker only once it is stored: a receiver that dies or
        # cannot write gets it again at its next connection.
        c.manual_ack_set(True)
        c.on_connect = self._connected
        c.on_disconnect = self._disconnected
        c.on_message = lambda client, userdata, msg: self._message(msg)
        self.client = c

    def start(self) -> "MqttLink":
        self.client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive_s)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False):
        """paho's MQTTMessageInfo (its is_published() turns true at the broker's PUBACK), or None
        when not connected: the owner keeps the message queued. Polled rather than called back,
        since paho calls on_publish holding its own lock, which the publishing thread also takes."""
        if not self.connected:
            return None
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info if info.rc == 0 else None

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            # A wrong password or a refused account: said in words, and retried by paho.
            self.error = f"the broker refused the connection: {reason_code}"
            log.error("MQTT: %s", self.error)
            return
        self.connected, self.error = True, ""
        self.connects += 1
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        log.info("MQTT connected to %s:%d as %s (session %s)", self.broker.host, self.broker.port,
                 self.broker.username, "resumed" if flags.session_present else "new")
        self.on_state(True)

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected
        self.connected = False
        self.error = f"disconnected: {reason_code}"
        if was:
            log.warning("MQTT: %s; reconnecting", self.error)
            self.on_state(False)

    def _message(self, msg) -> None:
        try:
            self.on_message(msg.topic, msg.payload, lambda: self.client.ack(msg.mid, msg.qos))
        except Exception:
            # Not acknowledged: the broker gives it again after the next reconnection (a database
            # that could not write); a message that can never be taken is dropped by its handler.
            log.exception("MQTT message on %s could not be stored; it will come again", msg.topic)
