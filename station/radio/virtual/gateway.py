"""A gateway: a radio of the office's with its MQTT module on, uplinking what it hears, as the
firmware does it (github:meshtastic/firmware src/mqtt/MQTT.cpp onSend, HEAD 7754068):
- the packet still sealed with its channel's key when `mqtt.encryption_enabled` is set, else the
  decoded copy (:734-744), whose `channel` is then the index that opened it (Router.cpp:937),
  where the sealed one carries the channel hash;
- a PKI-sealed DM on the channel "PKI", still sealed (:726-731), and nothing of it when
  `encryption_enabled` is off: the gateway cannot open a DM for another node (:740-743);
- in a `ServiceEnvelope` naming the channel and the gateway's own node id, on
  `<root>/2/e/<channel>/<gateway id>` (:746-753);
- published at QoS 0: MQTT::publish calls PubSubClient's publish, which has no other (:479).
One difference, which the station's tests do not depend on: this client checks the broker's
certificate, where the firmware's TLS does not (`setInsecure`, :503). For the tests of the
station's uplink (radio/uplink.py)."""

from __future__ import annotations

from meshtastic.protobuf import mesh_pb2, mqtt_pb2

from station.radio.channels import channel_name
from station.radio.virtual.bracelets import LONG_FAST, Bracelet
from station.radio.virtual.mesh import seal


def envelope(sender: Bracelet, packet: mesh_pb2.MeshPacket, *, gateway: str, to_station: int | None = None,
             encrypted: bool = True, root: str = "msh", snr: float = 6.25,
             hops_away: int = 0) -> tuple[str, bytes] | None:
    """(topic, payload) for `packet` from `sender`, as gateway `gateway` (!xxxxxxxx) heard it; None
    when the gateway publishes nothing of it."""
    sealed = seal(sender, packet, to_station)
    if sealed.pki and not encrypted:
        return None
    if encrypted:
        p = sealed.encrypted_copy(LONG_FAST)
    else:
        p = mesh_pb2.MeshPacket()
        p.CopyFrom(packet)
        p.channel = 0               # the index of the gateway's channel that opened it (Router.cpp:937)
    p.rx_snr = snr
    p.hop_start = p.hop_start or 3
    p.hop_limit = p.hop_start - hops_away
    channel = "PKI" if sealed.pki else channel_name(sender.channel, LONG_FAST)
    env = mqtt_pb2.ServiceEnvelope(packet=p, channel_id=channel, gateway_id=gateway)
    return f"{root}/2/e/{channel}/{gateway}", env.SerializeToString()


class Gateway:
    """The gateway's MQTT client: one account on the broker, TLS."""

    def __init__(self, host: str, port: int, username: str, password: str, ca_file: str):
        import paho.mqtt.client as mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(username, password)
        self.client.tls_set(ca_certs=ca_file)
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=0).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
