"""Virtual bracelets: Meshtastic nodes that build the packets a real bracelet sends.

The cast is fixed so that demos, tests and documentation can name the same people. Keys are
derived from the names, so a run is reproducible; PINs are the ones the registry is told.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field

from meshtastic.protobuf import mesh_pb2, portnums_pb2, telemetry_pb2

BROADCAST = 0xFFFFFFFF
PORT = portnums_pb2.PortNum


def node_id(num: int) -> str:
    return f"!{num:08x}"


def derived_key(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()


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


@dataclass
class Bracelet:
    num: int
    long_name: str
    short_name: str
    lat: float | None = None
    lon: float | None = None
    hw_model: int = mesh_pb2.HardwareModel.TRACKER_T1000_E
    public_key: bytes = b""
    cancel_pin: str | None = None
    duress_pin: str | None = None
    hops_away: int = 1
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    _next_id: int = 0

    def __post_init__(self) -> None:
        if not self.public_key:
            self.public_key = derived_key(f"{self.num}:{self.long_name}")
        self._next_id = self.rng.randrange(1, 2**31)

    @property
    def node_id(self) -> str:
        return node_id(self.num)

    # -- packets ----------------------------------------------------------------------------
    def packet(self, portnum: int, payload: bytes, *, to: int = BROADCAST, want_ack: bool = False,
               request_id: int = 0) -> mesh_pb2.MeshPacket:
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        p = mesh_pb2.MeshPacket()
        setattr(p, "from", self.num)
        p.to = to
        p.id = self._next_id
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
        return p

    def user(self) -> mesh_pb2.User:
        return mesh_pb2.User(id=self.node_id, long_name=self.long_name, short_name=self.short_name,
                             hw_model=self.hw_model, public_key=self.public_key)

    def nodeinfo(self) -> mesh_pb2.MeshPacket:
        return self.packet(PORT.NODEINFO_APP, self.user().SerializeToString())

    def position(self, lat: float | None = None, lon: float | None = None, *, fix: bool = True,
                 precision_bits: int = 32) -> mesh_pb2.MeshPacket:
        if lat is not None and lon is not None:
            self.lat, self.lon = lat, lon
        pos = mesh_pb2.Position(time=int(time.time()), precision_bits=precision_bits)
        if fix and self.lat is not None:
            pos.latitude_i = int(round(self.lat * 1e7))
            pos.longitude_i = int(round(self.lon * 1e7))
            pos.altitude = 40
            pos.sats_in_view = 7
        return self.packet(PORT.POSITION_APP, pos.SerializeToString())

    def telemetry(self, battery: int, voltage: float) -> mesh_pb2.MeshPacket:
        t = telemetry_pb2.Telemetry(time=int(time.time()))
        t.device_metrics.battery_level = battery
        t.device_metrics.voltage = voltage
        t.device_metrics.channel_utilization = 3.5
        t.device_metrics.air_util_tx = 0.4
        t.device_metrics.uptime_seconds = 3600
        return self.packet(PORT.TELEMETRY_APP, t.SerializeToString())

    def alert(self, text: str = "SOS") -> mesh_pb2.MeshPacket:
        return self.packet(PORT.ALERT_APP, text.encode())

    def detection(self, text: str = "SOS button pressed") -> mesh_pb2.MeshPacket:
        return self.packet(PORT.DETECTION_SENSOR_APP, text.encode())

    def text(self, text: str | bytes, *, to: int = BROADCAST) -> mesh_pb2.MeshPacket:
        return self.packet(PORT.TEXT_MESSAGE_APP, text if isinstance(text, bytes) else text.encode(), to=to)

    def serial(self, text: str) -> mesh_pb2.MeshPacket:
        return self.packet(PORT.SERIAL_APP, text.encode())

    def routing_ack(self, request_id: int, to: int, error: int = 0) -> mesh_pb2.MeshPacket:
        r = mesh_pb2.Routing(error_reason=error)
        return self.packet(PORT.ROUTING_APP, r.SerializeToString(), to=to, request_id=request_id)


def cast(seed: int = 1) -> dict[str, Bracelet]:
    """The people of the demo and the tests. Amina, Bashir and Chen are registered bracelets."""
    rng = random.Random(seed)

    def b(**kw) -> Bracelet:
        return Bracelet(rng=random.Random(rng.random()), **kw)

    return {
        "amina": b(num=0xB5A1E001, long_name="Amina D.", short_name="AMI", lat=14.69370, lon=-17.44410,
                   cancel_pin="2468", duress_pin="1357"),
        "bashir": b(num=0xB5A1E002, long_name="Bashir K.", short_name="BSK", lat=14.71520, lon=-17.47310,
                    cancel_pin="8642", duress_pin="9753", hops_away=2),
        "chen": b(num=0xB5A1E003, long_name="Chen L.", short_name="CHL", lat=None, lon=None,
                  cancel_pin="1111", duress_pin="9999"),
        # Not registered: a visitor's node that happens to send "SOS".
        "visitor": b(num=0x0DE5C0DE, long_name="Visitor", short_name="VIS", lat=14.70010, lon=-17.45020,
                     hw_model=mesh_pb2.HardwareModel.HELTEC_V3),
        # Takes Amina's name with another number and key.
        "impostor": b(num=0xBAD0E001, long_name="Amina D.", short_name="AMI", lat=14.60000, lon=-17.40000,
                      public_key=derived_key("impostor")),
    }


REGISTERED = ("amina", "bashir", "chen")


def register_cast(path, people: dict[str, Bracelet] | None = None, names=REGISTERED, *,
                  with_keys: bool = True) -> None:
    """Put the cast's registered bracelets (keys and PINs) in the registry of the database at
    `path`, as `station demo` and the tests need; bracelets already there are left alone."""
    import base64

    from station import registry
    from station.storage import db as dbmod
    from station.storage.migrations import migrate

    people = people or cast()
    db = dbmod.connect(path)
    try:
        migrate(db)
        known = {b.node_num for b in registry.list_all(db)}
        for name in names:
            b = people[name]
            if b.num in known:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                registry.add(db, b.num, b.long_name, time.time(),
                             public_key=base64.b64encode(b.public_key).decode() if with_keys else None,
                             cancel_pin=b.cancel_pin, duress_pin=b.duress_pin)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
    finally:
        db.conn.close()
