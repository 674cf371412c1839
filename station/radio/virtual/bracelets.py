"""Virtual bracelets: Meshtastic nodes modelled on real devices and their stock firmware builds.

A bracelet builds the packets a real node sends (`position()`, `telemetry()`, `nodeinfo()`, ...)
and acts as its wearer makes it act (`press()`, `double_press()`, `canned()`), with the rules its
firmware applies: modules its build leaves out do nothing, the detection sensor refuses the
public channel and ignores presses within `minimum_broadcast_secs`, positions leave at the
channel's precision, and battery 101 means external power.

The cast is fixed so that demos, tests and documentation can name the same people. Keys are
derived from the names, so a run is reproducible; PINs are the ones the registry is told.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from meshtastic.protobuf import channel_pb2, mesh_pb2, module_config_pb2, portnums_pb2, telemetry_pb2

from station.radio.virtual import devices
from station.radio.virtual.firmware import DEFAULT as DEFAULT_FIRMWARE
from station.radio.virtual.keys import KeyPair, is_default_channel

BROADCAST = 0xFFFFFFFF
PORT = portnums_pb2.PortNum
LONG_FAST = 0                          # config_pb2 ModemPreset.LONG_FAST
DETECTION = module_config_pb2.ModuleConfig.DetectionSensorConfig
# NodeDB.cpp:937 / Default.h: 45 s by default; 0 means default_broadcast_interval_secs (3600).
DEFAULT_MIN_BROADCAST_S = 45


def node_id(num: int) -> str:
    return f"!{num:08x}"


def nmea_sentence(body: str) -> str:
    """`body` without '$' and checksum, e.g. 'GPRMC,...'; returns the full sentence."""
    cs = 0
    for ch in body:
        cs ^= ord(ch)
    return f"${body}*{cs:02X}"


def _nmea_coord(value: float, is_lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if is_lat else ("E" if value >= 0 else "W")
    value = abs(value)
    deg = int(value)
    minutes = (value - deg) * 60
    return (f"{deg:02d}{minutes:07.4f}" if is_lat else f"{deg:03d}{minutes:07.4f}"), hemi


def rmc(lat: float, lon: float, when: float, talker: str = "GP") -> str:
    t = time.gmtime(when)
    la, ns = _nmea_coord(lat, True)
    lo, ew = _nmea_coord(lon, False)
    return nmea_sentence(f"{talker}RMC,{time.strftime('%H%M%S', t)}.00,A,{la},{ns},{lo},{ew},0.0,0.0,"
                         f"{time.strftime('%d%m%y', t)},,,A")


def gga(lat: float, lon: float, when: float, talker: str = "GN", sats: int = 8) -> str:
    t = time.gmtime(when)
    la, ns = _nmea_coord(lat, True)
    lo, ew = _nmea_coord(lon, False)
    return nmea_sentence(f"{talker}GGA,{time.strftime('%H%M%S', t)}.00,{la},{ns},{lo},{ew},1,{sats:02d},0.9,"
                         "12.0,M,0.0,M,,")


def truncate(coordinate_i: int, bits: int) -> int:
    """PositionPrecision.cpp truncateCoordinate: keep the top `bits` bits of the 32-bit
    coordinate and move to the middle of the cell."""
    if bits >= 32:
        return coordinate_i
    u = coordinate_i & 0xFFFFFFFF
    u &= (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    u = (u + (1 << (31 - bits))) & 0xFFFFFFFF
    return u - (1 << 32) if u >= 1 << 31 else u


def public_channel() -> channel_pb2.ChannelSettings:
    """The default channel every new node has: PSK 1 under the preset's name, 13-bit positions
    (Channels.cpp initDefaultChannel:139)."""
    s = channel_pb2.ChannelSettings(psk=b"\x01")
    s.module_settings.position_precision = 13
    return s


def private_channel(name: str, psk: bytes, precision: int = 32) -> channel_pb2.ChannelSettings:
    s = channel_pb2.ChannelSettings(name=name, psk=psk)
    s.module_settings.position_precision = precision
    return s


# The office's private channel in the demo and the tests (a real office generates its own key).
OFFICE_CHANNEL = private_channel("Natalia", bytes(range(1, 33)))


@dataclass
class Bracelet:
    num: int
    long_name: str
    short_name: str
    lat: float | None = None
    lon: float | None = None
    device: str = "rak4631"
    firmware: str = DEFAULT_FIRMWARE
    channel: channel_pb2.ChannelSettings = field(default_factory=lambda: _copy(OFFICE_CHANNEL))
    public_key: bytes = b""               # set from the key pair unless given (an impostor's claim)
    cancel_pin: str | None = None
    duress_pin: str | None = None
    hops_away: int = 1                    # relays between it and the station (0: heard directly)
    external_power: bool = False
    knows_station_key: bool = True        # heard the station radio's NodeInfo, so DMs go PKI
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    # Detection sensor as the office guide sets it on bracelets with a button on a free pin.
    sensor: DETECTION = field(default_factory=lambda: DETECTION(
        enabled=True, name="SOS", send_bell=True, minimum_broadcast_secs=DEFAULT_MIN_BROADCAST_S,
        detection_trigger_type=DETECTION.TriggerType.EITHER_EDGE_ACTIVE_HIGH, monitor_pin=34))
    # Never a PIN (hardware/bracelets.md): the canned SOS only.
    canned_messages: tuple[str, ...] = ("SOS",)
    send_bell: bool = True                # canned_message.send_bell
    booted_at: float = 0.0                # on the stage's clock; 0: long ago
    key_seed: str = ""                    # another node's key pair under a borrowed number (an attacker)
    _next_id: int = 0

    def __post_init__(self) -> None:
        self.model = devices.device(self.device)
        self.keys = KeyPair.from_seed(self.key_seed or f"{self.num}:{self.long_name}")
        if not self.public_key:
            self.public_key = self.keys.public
        self.hw_model = self.model.hw_model
        self._next_id = self.rng.randrange(1, 2**31)
        self.last_sensor_sent: float | None = None
        self.inbox: list[mesh_pb2.MeshPacket] = []     # DMs it received and could read
        self.log: list[str] = []                       # its debug console, for tests to read

    @property
    def node_id(self) -> str:
        return node_id(self.num)

    @property
    def precision(self) -> int:
        return self.channel.module_settings.position_precision

    @property
    def on_public_channel(self) -> bool:
        return is_default_channel(self.channel, LONG_FAST)

    # -- packets ----------------------------------------------------------------------------
    def packet(self, portnum: int, payload: bytes, *, to: int = BROADCAST, want_ack: bool = False,
               request_id: int = 0, want_response: bool = False) -> mesh_pb2.MeshPacket:
        # Router.cpp generatePacketId: a counter in the low 10 bits under 22 random bits.
        self._next_id = (self._next_id + 1) & 0x3FF
        p = mesh_pb2.MeshPacket()
        setattr(p, "from", self.num)
        p.to = to
        p.id = (self.rng.getrandbits(22) << 10 | self._next_id) or 1
        p.channel = 0
        p.rx_time = int(time.time())
        p.rx_snr = round(self.rng.uniform(-12, 8), 2)
        p.rx_rssi = self.rng.randint(-120, -60)
        p.hop_start = 3
        p.hop_limit = max(0, 3 - self.hops_away)
        p.want_ack = want_ack
        p.decoded.portnum = portnum
        p.decoded.payload = payload
        if request_id:
            p.decoded.request_id = request_id
        if want_response:
            p.decoded.want_response = True
        return p

    def user(self) -> mesh_pb2.User:
        return mesh_pb2.User(id=self.node_id, long_name=self.long_name, short_name=self.short_name,
                             hw_model=self.hw_model, public_key=self.public_key)

    def nodeinfo(self) -> mesh_pb2.MeshPacket:
        return self.packet(PORT.NODEINFO_APP, self.user().SerializeToString())

    def position(self, lat: float | None = None, lon: float | None = None, *, fix: bool = True,
                 precision_bits: int | None = None, want_response: bool = False) -> mesh_pb2.MeshPacket:
        """A position as it leaves the node: at its channel's precision (Router.cpp:357,
        PositionPrecision.cpp); 0 bits sends the time alone."""
        if lat is not None and lon is not None:
            self.lat, self.lon = lat, lon
        bits = self.precision if precision_bits is None else precision_bits
        pos = mesh_pb2.Position(time=int(time.time()))
        if fix and self.lat is not None and bits > 0:
            pos.latitude_i = truncate(int(round(self.lat * 1e7)), bits)
            pos.longitude_i = truncate(int(round(self.lon * 1e7)), bits)
            pos.altitude = 40
            pos.sats_in_view = 7
            pos.precision_bits = min(bits, 32)
        return self.packet(PORT.POSITION_APP, pos.SerializeToString(), want_response=want_response)

    def telemetry(self, battery: int, voltage: float) -> mesh_pb2.MeshPacket:
        """DeviceTelemetry.cpp:18,107-109: on external power the level reads 101."""
        t = telemetry_pb2.Telemetry(time=int(time.time()))
        t.device_metrics.battery_level = 101 if self.external_power else battery
        t.device_metrics.voltage = voltage
        t.device_metrics.channel_utilization = 3.5
        t.device_metrics.air_util_tx = 0.4
        t.device_metrics.uptime_seconds = 3600
        return self.packet(PORT.TELEMETRY_APP, t.SerializeToString())

    def alert(self, text: str = "SOS") -> mesh_pb2.MeshPacket:
        """ALERT_APP: only a phone app sends it (no firmware module originates one)."""
        return self.packet(PORT.ALERT_APP, text.encode())

    def detection(self, text: str = "SOS detected\x07") -> mesh_pb2.MeshPacket:
        """A DETECTION_SENSOR_APP packet as given, bypassing the module's rules (for tests of
        the station's decoder); `press()` is what a real bracelet does."""
        return self.packet(PORT.DETECTION_SENSOR_APP, text.encode())

    def text(self, text: str | bytes, *, to: int = BROADCAST, want_ack: bool = False) -> mesh_pb2.MeshPacket:
        return self.packet(PORT.TEXT_MESSAGE_APP, text if isinstance(text, bytes) else text.encode(), to=to,
                           want_ack=want_ack)

    def message_to(self, station_num: int, text: str) -> mesh_pb2.MeshPacket:
        """A direct message to the station, as the wearer types it in the Meshtastic app paired with
        her bracelet: sealed with PKI when the bracelet knows the station's key (Router.cpp
        perhapsEncode), which is how a cancel and its PIN travel (never on a channel)."""
        return self.text(text, to=station_num, want_ack=True)

    def serial(self, text: str) -> mesh_pb2.MeshPacket:
        return self.packet(PORT.SERIAL_APP, text.encode())

    def routing_ack(self, request_id: int, to: int, error: int = 0) -> mesh_pb2.MeshPacket:
        r = mesh_pb2.Routing(error_reason=error)
        return self.packet(PORT.ROUTING_APP, r.SerializeToString(), to=to, request_id=request_id)

    # -- what the wearer does ----------------------------------------------------------------
    def press(self, now: float) -> list[mesh_pb2.MeshPacket]:
        """One press of the user button, as the stock build handles it."""
        if self.model.key == "t1000e":
            self.log.append("button: single press gives buzzer feedback only")
            return []
        if self.model.key == "techo":
            return self.canned("SOS")
        if self.model.lacks(devices.X.DETECTIONSENSOR_CONFIG) or not self.sensor.enabled:
            self.log.append("button: no module turns a press into a message")
            return []
        return self._sensor_message(now, f"{self.sensor.name} detected", bell=self.sensor.send_bell)

    def release(self, now: float) -> list[mesh_pb2.MeshPacket]:
        """The button let go: with an EITHER_EDGE trigger the sensor reports "state: 0"
        (DetectionSensorModule.cpp:34-40, 142-157), subject to the same minimum interval."""
        edge = (DETECTION.TriggerType.EITHER_EDGE_ACTIVE_HIGH, DETECTION.TriggerType.EITHER_EDGE_ACTIVE_LOW)
        if self.model.lacks(devices.X.DETECTIONSENSOR_CONFIG) or self.sensor.detection_trigger_type not in edge:
            return []
        return self._sensor_message(now, f"{self.sensor.name} state: 0", bell=False)

    def state_broadcast(self, now: float, state: int = 0) -> list[mesh_pb2.MeshPacket]:
        """The periodic "<name> state: N" of state_broadcast_secs (DetectionSensorModule.cpp:99-115)."""
        if self.model.lacks(devices.X.DETECTIONSENSOR_CONFIG):
            return []
        return self._sensor_message(now, f"{self.sensor.name} state: {state}", bell=False)

    def _sensor_message(self, now: float, text: str, *, bell: bool) -> list[mesh_pb2.MeshPacket]:
        minimum = self.sensor.minimum_broadcast_secs or 3600
        since = now - (self.last_sensor_sent if self.last_sensor_sent is not None else self.booted_at)
        if since < minimum:
            self.log.append(f"detection sensor: ignored, {since:.0f} s since the last message (minimum {minimum} s)")
            return []
        self.last_sensor_sent = now   # set before the channel check, as the firmware does
        if self.on_public_channel:
            self.log.append("Message not allow on Public channel")
            return []
        payload = text.encode()[:237] + (b"\x07" if bell else b"")
        return [self.packet(PORT.DETECTION_SENSOR_APP, payload)]

    def canned(self, message: str, *, to: int = BROADCAST) -> list[mesh_pb2.MeshPacket]:
        """A canned message chosen on the device (CannedMessageModule.cpp:1077-1080: the bell
        follows the text when send_bell is set)."""
        if self.model.lacks(devices.X.CANNEDMSG_CONFIG):
            self.log.append("canned messages are not in this build")
            return []
        text = message + ("\x07" if self.send_bell else "")
        return [self.text(text, to=to, want_ack=to != BROADCAST)]

    def double_press(self) -> list[mesh_pb2.MeshPacket]:
        """T1000-E: INPUT_BROKER_SEND_PING sends a position (or node info) broadcast asking for
        replies (SystemCommandsModule.cpp:106-113): not an alert, just "here I am"."""
        if self.model.key != "t1000e":
            return []
        if self.lat is None:
            return [self.nodeinfo()]
        return [self.position(want_response=True)]

    def triple_press(self) -> list[mesh_pb2.MeshPacket]:
        """T1000-E: GPS on or off; nothing goes on air."""
        self.log.append("GPS toggled")
        return []

    def receive(self, packet: mesh_pb2.MeshPacket) -> None:
        self.inbox.append(packet)

    def texts_received(self) -> list[str]:
        return [p.decoded.payload.decode("utf-8", "replace") for p in self.inbox
                if p.decoded.portnum == PORT.TEXT_MESSAGE_APP]


def _copy(settings: channel_pb2.ChannelSettings) -> channel_pb2.ChannelSettings:
    s = channel_pb2.ChannelSettings()
    s.CopyFrom(settings)
    return s


def cast(seed: int = 1) -> dict[str, Bracelet]:
    """The people of the demo and the tests. Amina, Bashir and Chen are registered bracelets on
    the office's private channel; each wears a different stock device."""
    rng = random.Random(seed)

    def b(**kw) -> Bracelet:
        return Bracelet(rng=random.Random(rng.random()), **kw)

    return {
        # A RAK4631 with a push button on the detection sensor's pin: the reference bracelet.
        "amina": b(num=0xB5A1E001, long_name="Amina D.", short_name="AMI", lat=14.69370, lon=-17.44410,
                   device="rak4631", cancel_pin="246813", duress_pin="135792"),
        # A T-Echo sending the canned message "SOS" (with the bell); 16-bit positions (±300 m).
        "bashir": b(num=0xB5A1E002, long_name="Bashir K.", short_name="BSK", lat=14.71520, lon=-17.47310,
                    device="techo", cancel_pin="864213", duress_pin="975313", hops_away=2,
                    channel=private_channel("Natalia", OFFICE_CHANNEL.psk, 16)),
        # A Heltec V3 with the office's own NMEA firmware, on external power.
        "chen": b(num=0xB5A1E003, long_name="Chen L.", short_name="CHL", lat=None, lon=None,
                  device="heltec-v3", cancel_pin="112233", duress_pin="998877", external_power=True),
        # A T1000-E as it ships: no module can turn its button into an alert.
        "dara": b(num=0xB5A1E004, long_name="Dara N.", short_name="DAR", lat=14.68110, lon=-17.46020,
                  device="t1000e", cancel_pin="432198", duress_pin="876512"),
        # Not registered: a visitor's node on the public channel that happens to send "SOS".
        "visitor": b(num=0x0DE5C0DE, long_name="Visitor", short_name="VIS", lat=14.70010, lon=-17.45020,
                     device="heltec-v3", channel=public_channel(), knows_station_key=False),
        # Takes Amina's name with another number and key.
        "impostor": b(num=0xBAD0E001, long_name="Amina D.", short_name="AMI", lat=14.60000, lon=-17.40000,
                      device="heltec-v3", knows_station_key=False),
    }


REGISTERED = ("amina", "bashir", "chen")


def register_cast(path, people: dict[str, Bracelet] | None = None, names=REGISTERED, *,
                  pin_policy=None) -> None:
    """Put the cast's registered bracelets (keys and PINs) in the registry of the database at
    `path`, as `station demo` and the tests need; bracelets already there are left alone."""
    import base64

    from pathlib import Path

    from station import pins, registry
    from station.storage import db as dbmod
    from station.storage.migrations import migrate

    people = people or cast()
    policy = pin_policy or pins.PinPolicy(pins.PinKey.load(pins.key_path(Path(path))))
    db = dbmod.connect(path)
    try:
        migrate(db)
        known = {b.node_num for b in registry.list_all(db)}
        for name in names:
            b = people[name]
            if b.num in known:
                continue
            pin_hashes = policy.hash_pair(b.cancel_pin, b.duress_pin)
            db.execute("BEGIN IMMEDIATE")
            try:
                registry.add(db, b.num, b.long_name, time.time(),
                             public_key=base64.b64encode(b.public_key).decode(),
                             pin_hashes=pin_hashes)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
    finally:
        db.conn.close()
