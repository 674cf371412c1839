"""The mesh heard through Meshtastic's own MQTT uplink: a radio of the office's (a gateway) with its
MQTT module on publishes every packet it hears as a `ServiceEnvelope` on
`<root>/2/e/<channel>/<gateway id>`, and the station takes those packets as its serial radio's.
What the firmware does, from github:meshtastic/firmware src/mqtt/MQTT.cpp (HEAD 7754068):

- `onSend` (:697-760) publishes the packet still sealed with the channel key when the gateway's
  `mqtt.encryption_enabled` is set, else the gateway's decoded copy; a DM sealed with PKI goes to
  the channel "PKI", sealed, since only the radio holding the recipient's key can open it (and
  with `encryption_enabled` off, nothing of such a DM: :740-743);
- on the public default server it drops detection-sensor and range-test packets (:720-724): a
  bracelet's button press would never arrive, so the broker must be the office's own;
- the gateway id in the envelope and the topic is the gateway's own node id (:747-753);
- a gateway never uplinks what it heard from MQTT (:699), and the firmware refuses a downlinked
  packet with a hop limit or start above 7 (:140-143);
- a packet taken from MQTT gets `via_mqtt`, and `pki_encrypted` false: "Only local AES-CCM
  decryption may establish PKI authentication" (:153-154);
- the gateway's TLS does not check the broker's certificate (`setInsecure`, :503), so its MQTT
  password is only as safe as the LAN it crosses; and it uplinks other nodes' packets to a broker
  whose address is not private only when they carry "OK to MQTT" (:406, :514, :712-717).

From that, what the station trusts:
- a packet it opened itself with the office channel's private key proves what one its radio
  opened proves: it was sealed with the office's key (trust.py, "channel"), whoever could write
  to the broker;
- a decoded copy (the gateway's encryption off) is the gateway's word, not the key's: taken, but
  as heard off the office channel (unverified for a registered bracelet) and the operator told to
  set `encryption_enabled` on the gateway;
- a packet is never PKI here: a wearer's sealed cancel or check-in needs the station's own radio;
- only the gateways named in [uplink] gateways are listened to (the broker's ACL should let only
  their account write under the root); anything else, or garbage, is counted and dropped."""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from google.protobuf.message import DecodeError
from meshtastic.protobuf import channel_pb2, mesh_pb2, mqtt_pb2

from station.radio.channels import aes_ctr, channel_hash, expand_psk, own_key

log = logging.getLogger(__name__)
HOP_MAX = 7                 # MQTT.cpp:140, mesh/MeshTypes.h HOP_MAX
MAX_ENVELOPE_BYTES = 1024   # a LoRa packet is at most 256 bytes; an envelope adds two short strings
PKI_CHANNEL = "PKI"
# More than a LoRa mesh can carry: LongFast moves a packet in about a second of air, and even a
# dozen gateways on several channels stay far below this. Beyond it, someone is writing to the
# broker, and the station drops (and counts) rather than fill its disk.
MAX_PACKETS_PER_S = 50.0
BURST = 200

# Why an envelope was dropped: the counters' names.
BAD_TOPIC, GARBAGE, UNKNOWN_GATEWAY, OTHER_CHANNEL, PKI_SEALED, WRONG_KEY, BAD_PACKET, FLOOD = (
    "not an uplink topic", "not a ServiceEnvelope", "from a gateway not in [uplink] gateways",
    "on another channel", "a PKI-sealed DM (only the recipient's radio opens it)",
    "does not open with the channel key", "an impossible packet", "faster than a LoRa mesh can carry")


class Bucket:
    """A token bucket: `rate` a second, up to `burst` at once; `clock` is monotonic seconds."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = float(burst), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(frozen=True)
class Channel:
    name: str       # as the topic and envelope name it: the channel's name, or the preset's (LongFast)
    psk: bytes      # as the radio stores it ("AQ==" is the published default)

    @property
    def key(self) -> bytes:
        return expand_psk(self.psk)

    @property
    def hash(self) -> int:
        """What an encrypted packet carries in `channel` (Channels.cpp generateHash)."""
        return channel_hash(channel_pb2.ChannelSettings(name=self.name, psk=self.psk), 0)

    @property
    def private(self) -> bool:
        """Like the radio's office channel (radio/info.py): a key of its own."""
        return own_key(self.psk)


@dataclass(frozen=True)
class Opened:
    packet: mesh_pb2.MeshPacket
    gateway: str
    office: bool        # opened here with the office channel's private key


def open_envelope(topic: str, payload: bytes, *, root: str, channel: Channel,
                  gateways: frozenset[str]) -> Opened | str:
    """The packet a gateway uplinked, decoded and marked as heard over MQTT, or why not."""
    m = re.fullmatch(rf"{re.escape(root)}/2/e/([^/]{{1,32}})/(![0-9a-f]{{8}})", topic)
    if m is None:
        return BAD_TOPIC
    topic_channel, gateway = m.groups()
    if gateway not in gateways:
        return UNKNOWN_GATEWAY
    if len(payload) > MAX_ENVELOPE_BYTES:
        return GARBAGE
    env = mqtt_pb2.ServiceEnvelope()
    try:
        env.ParseFromString(payload)
    except (DecodeError, ValueError):
        return GARBAGE
    if not env.HasField("packet") or env.gateway_id != gateway or env.channel_id != topic_channel:
        return GARBAGE
    if env.channel_id == PKI_CHANNEL:
        return PKI_SEALED
    if env.channel_id != channel.name:
        return OTHER_CHANNEL
    p = env.packet
    if not getattr(p, "from") or not p.id or p.hop_limit > HOP_MAX or p.hop_start > HOP_MAX:
        return BAD_PACKET
    office = False
    if p.HasField("encrypted"):
        if p.channel != channel.hash:
            return WRONG_KEY        # sealed under another channel's name and key (Router.cpp:903)
        data = mesh_pb2.Data()
        try:
            data.ParseFromString(aes_ctr(channel.key, p.id, getattr(p, "from"), p.encrypted))
        except (DecodeError, ValueError):
            return WRONG_KEY
        if not data.portnum:
            # CTR "opens" anything: the firmware, too, takes a decryption only when it parses with
            # a port (Router.cpp:903-918).
            return WRONG_KEY
        p.decoded.CopyFrom(data)
        office = channel.private
    elif not p.HasField("decoded"):
        return BAD_PACKET
    p.via_mqtt = True
    p.pki_encrypted = False
    p.ClearField("public_key")
    p.channel = 0
    return Opened(p, gateway, office)


class UplinkError(Exception):
    pass


class Uplink:
    """Subscribes to the gateways' uplink on the broker and hands each packet to `on_packet`
    (the daemon's ingest, as the serial radio does). The firmware publishes at QoS 0 (its
    PubSubClient has no other), and a broker keeps no QoS 0 message for a client that is away:
    what a gateway sends while the station is disconnected is lost to it, as a serial radio's
    packets are beyond its 8 to 32 kept for an absent host. Run the station near its broker."""

    def __init__(self, cfg, on_packet: Callable[..., None]):
        from station.escalation.channels import ChannelError, read_secret
        u = cfg.uplink
        self.cfg = cfg
        self.on_packet = on_packet
        self.root = u["topic_root"]
        self.gateways = frozenset(u["gateways"])
        try:
            text = read_secret(u["channel_key_file"], cfg.base_dir, "[uplink] channel_key_file")
            self.password = read_secret(u["password_file"], cfg.base_dir, "[uplink] password_file")
        except ChannelError as e:
            raise UplinkError(e.reason) from None
        try:
            psk = base64.b64decode(text, validate=True)
        except ValueError:
            raise UplinkError("[uplink] channel_key_file: expected the channel key in base64 "
                              "(as `meshtastic --info` shows it)") from None
        if len(psk) not in (0, 1, 16, 32):
            raise UplinkError(f"[uplink] channel_key_file: expected a key of 1, 16 or 32 bytes, found {len(psk)}")
        self.channel = Channel(u["channel"], psk)
        self.link = None
        self.taken = 0
        self.dropped: Counter[str] = Counter()
        self._told_clear = False
        self._lock = threading.Lock()
        self.bucket = Bucket(MAX_PACKETS_PER_S, BURST, time.monotonic)

    def start(self) -> "Uplink":
        from station.network.mqtt import Broker, MqttLink, client_id
        u = self.cfg.uplink
        host, port = Broker.parse(u["broker"])
        ca = str(self.cfg.base_dir / u["ca_file"]) if u["ca_file"] else None
        if not self.channel.private:
            log.warning("[uplink] channel %s has no key of its own: anyone near a radio can write on it, and "
                        "nothing heard there speaks for a bracelet", self.channel.name)
        self.link = MqttLink(Broker(host, port, u["username"], self.password, ca, u["keepalive_s"]),
                             client_id(u["username"], self.password),
                             subscriptions=[f"{self.root}/2/e/{self.channel.name}/+", f"{self.root}/2/e/{PKI_CHANNEL}/+"],
                             on_message=self._message).start()
        return self

    def stop(self) -> None:
        if self.link is not None:
            self.link.stop()

    @property
    def listening(self) -> bool:
        return bool(self.link and self.link.connected)

    def _message(self, topic: str, payload: bytes, ack) -> None:
        got = open_envelope(topic, payload, root=self.root, channel=self.channel, gateways=self.gateways)
        with self._lock:
            if not isinstance(got, str) and not self.bucket.take():
                got = FLOOD
            if isinstance(got, str):
                self.dropped[got] += 1
                n = self.dropped[got]
        if isinstance(got, str):
            # Counted always; logged the 1st, 10th, 100th... time, so a flood cannot fill the journal.
            if n in (1, 10, 100, 1000) or n % 10000 == 0:
                log.warning("uplink: dropped an envelope on %s: %s (%d so far)", topic[:80], got, n)
            ack()
            return
        if not got.office and self.channel.private and not self._told_clear:
            self._told_clear = True
            log.warning("uplink: gateway %s sends packets already decoded, which prove nothing of the channel "
                        "key; set its mqtt.encryption_enabled", got.gateway)
        # Handed over as the serial radio's packets are: the spool holds it when this returns.
        self.on_packet(got.packet, office=got.office)
        with self._lock:
            self.taken += 1
        ack()

    def status(self) -> dict:
        with self._lock:
            dropped = dict(self.dropped)
        return {"enabled": True, "connected": self.listening, "error": self.link.error if self.link else "", "taken": self.taken,
                "dropped": dropped, "channel": self.channel.name, "gateways": sorted(self.gateways)}
