"""Named scenarios for the virtual radio: what the bracelets and their wearers do, step by step.

Each scenario is a function of a `Stage`; `stage.pause(s)` is scaled by the speed, so tests run
them in milliseconds and the demo at human pace. The stage keeps its own clock, which a pause
always advances by the full `s`: a bracelet's firmware timers (the detection sensor's 45 s
minimum) then behave as on a real device even when the test runs at speed 0.

The wearers use their stock devices as they really work (bracelets.py): Amina presses the button
wired to her RAK4631's detection sensor, Bashir sends his T-Echo's canned "SOS" (with the bell),
Chen's own firmware sends keywords and NMEA, Dara's T1000-E cannot raise an alert at all.
ALERT_APP stays what it is in reality: the phone app's path. The expected effect of each
scenario is asserted in tests/test_scenarios.py.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from meshtastic.protobuf import mesh_pb2

from station.radio import framing
from station.radio.virtual.bracelets import OFFICE_CHANNEL, Bracelet, cast, gga, public_channel, rmc
from station.radio.virtual.device import VirtualRadio

KNOWN = ("amina", "bashir", "chen", "dara")   # heard by the station's radio before the scenario


@dataclass
class Stage:
    radio: VirtualRadio
    speed: float = 1.0                      # 0: no pauses at all
    stop: threading.Event = field(default_factory=threading.Event)
    people: dict[str, Bracelet] = field(default_factory=cast)
    corpus_dir: Path | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(3))
    limit: int | None = None                # stop the scenario after this many packets on the air

    def __post_init__(self) -> None:
        self.clock = time.time()
        self.sent = 0
        for name, b in self.people.items():
            self.radio.add_node(b, known=name in KNOWN)
        self._by_num = {b.num: b for b in self.people.values()}

    def now(self) -> float:
        return self.clock

    def pause(self, seconds: float) -> None:
        self.clock += seconds
        if self.speed > 0:
            self.stop.wait(seconds / self.speed)

    def send(self, packet: mesh_pb2.MeshPacket, times: int = 1, *, sender: Bracelet | None = None) -> None:
        """Put a packet on the air from its sender (found by its number when not given); `times`
        > 1 repeats it as rebroadcasts, one hop further each time."""
        sender = sender or self._by_num.get(getattr(packet, "from"))
        for i in range(times):
            if self.limit is not None and self.sent >= self.limit:
                self.stop.set()
                return
            self.sent += 1
            if i:
                packet.hop_limit = max(0, packet.hop_limit - 1)
            if sender is None:
                self.radio.hear(packet, None, OFFICE_CHANNEL)
            else:
                self.radio.hear(packet, sender)

    def act(self, bracelet: Bracelet, packets: list[mesh_pb2.MeshPacket]) -> None:
        for p in packets:
            self.send(p, sender=bracelet)

    def press(self, name: str) -> None:
        b = self.people[name]
        self.act(b, b.press(self.clock))

    def __getattr__(self, name: str) -> Bracelet:
        try:
            return self.people[name]
        except KeyError:
            raise AttributeError(name) from None


def join(s: Stage) -> None:
    for name in ("amina", "bashir", "chen"):
        s.send(s.people[name].nodeinfo())
        s.pause(0.2)
    s.send(s.amina.position())
    s.send(s.bashir.position())
    s.send(s.amina.telemetry(87, 4.05))
    s.send(s.bashir.telemetry(64, 3.88))


def sos(s: Stage) -> None:
    join(s)
    s.pause(1)
    s.press("amina")


def sos_no_fix(s: Stage) -> None:
    join(s)
    s.pause(1)
    s.send(s.bashir.position(fix=False))   # the bracelet lost its fix indoors
    s.press("bashir")
    s.send(s.chen.text("SOS"))             # Chen never had a fix at all


def triggers(s: Stage) -> None:
    """The ways an alert really arrives, one sender each."""
    join(s)
    s.press("amina")                       # detection sensor: "SOS detected\a"
    s.press("bashir")                      # canned message: "SOS\a"
    s.send(s.chen.alert("SOS"))            # a phone app's ALERT_APP, through Chen's node
    s.send(s.visitor.nodeinfo())
    s.send(s.visitor.text("please help, SOS"))   # a keyword, heard on the public channel


def moving(s: Stage) -> None:
    join(s)
    s.press("amina")
    lat, lon = s.amina.lat, s.amina.lon
    for i in range(1, 6):
        s.pause(1)
        s.send(s.amina.position(lat + i * 0.001, lon + i * 0.0005))


def _alert_then_cancel(s: Stage, pin: str) -> None:
    join(s)
    s.press("amina")
    s.pause(2)
    # Typed in the app paired with her bracelet, as a direct message to the station: sealed with
    # her key, never on a channel where everyone with the channel key would read the PIN.
    s.send(s.amina.message_to(s.radio.node_num, f"SAFE {pin}"))


def cancel(s: Stage) -> None:
    _alert_then_cancel(s, s.amina.cancel_pin)


def wrong_pin(s: Stage) -> None:
    _alert_then_cancel(s, "0000")


def duress(s: Stage) -> None:
    _alert_then_cancel(s, s.amina.duress_pin)


def battery(s: Stage) -> None:
    join(s)
    for level in range(80, 0, -10):
        s.pause(1)
        s.send(s.bashir.telemetry(level, 3.3 + level / 100))
    s.send(s.chen.telemetry(0, 4.9))       # on external power: the firmware reports 101


def duplicates(s: Stage) -> None:
    join(s)
    [press] = s.amina.press(s.now())
    s.send(press, times=3)
    s.send(s.amina.position(), times=2)


def burst(s: Stage) -> None:
    """Ten canned SOS from Bashir's T-Echo, 0.3 s apart (the canned-message module has no
    minimum interval; the detection sensor would send only the first)."""
    join(s)
    for _ in range(10):
        s.press("bashir")
        s.pause(0.3)


def sensor(s: Stage) -> None:
    """Amina's button as the detection sensor really reports it: three quick presses give one
    "detected" message (45 s minimum interval), the release is reported as "state: 0" once the
    interval has passed, and the sensor later repeats its state on its own."""
    join(s)
    for _ in range(3):
        s.press("amina")
        s.pause(2)
    s.pause(45)
    s.act(s.amina, s.amina.release(s.now()))
    s.pause(3600)
    s.act(s.amina, s.amina.state_broadcast(s.now(), 0))


def public_channel_press(s: Stage) -> None:
    """A bracelet left on the default public channel: the detection sensor refuses to send
    (DetectionSensorModule.cpp:134-138). Nothing reaches the station."""
    join(s)
    s.amina.channel = public_channel()
    s.press("amina")
    s.pause(60)
    s.press("amina")


def t1000e(s: Stage) -> None:
    """Dara's T1000-E as it ships: one press buzzes, two send her position, three toggle GPS.
    None of it is an alert."""
    join(s)
    s.send(s.dara.nodeinfo())
    s.press("dara")
    s.pause(2)
    s.act(s.dara, s.dara.double_press())
    s.pause(2)
    s.act(s.dara, s.dara.triple_press())


def two_presses(s: Stage) -> None:
    """Two wearers raise the alarm within a second of each other."""
    join(s)
    s.press("amina")
    s.pause(0.5)
    s.press("bashir")


def unregistered(s: Stage) -> None:
    join(s)
    s.send(s.visitor.nodeinfo())
    s.send(s.visitor.position())
    s.send(s.visitor.text("SOS"))


def impostor(s: Stage) -> None:
    join(s)
    # Another node takes Amina's name (and uses a phone app's ALERT_APP).
    s.send(s.impostor.nodeinfo())
    s.send(s.impostor.alert("SOS"))
    # Bashir's node number, announcing a different key, from a node on the public channel (whose
    # key is published: anyone can do this).
    fake = Bracelet(num=s.bashir.num, long_name=s.bashir.long_name, short_name=s.bashir.short_name,
                    public_key=b"\x42" * 32, device="heltec-v3", rng=random.Random(99), knows_station_key=False,
                    channel=public_channel(), key_seed="someone else")
    s.send(fake.nodeinfo(), sender=fake)
    s.send(fake.alert("SOS"), sender=fake)


def nmea(s: Stage) -> None:
    join(s)
    now = time.time()
    s.send(s.chen.text(f"SOS {rmc(14.7001, -17.4502, now)}"))
    s.send(s.bashir.serial(gga(14.7201, -17.4811, now, talker="GN") + "\r\n"))
    bad = rmc(1.0, 2.0, now)[:-2] + "00"   # wrong checksum: counted, never a position
    s.send(s.bashir.serial(bad))


def garbage(s: Stage) -> None:
    s.radio.garbage(0.7)
    join(s)
    for _ in range(10):
        # Any byte but the frame start: noise that happens to hold 0x94 0xC3 would (really) eat
        # the next frame, which is the corrupt-frame scenario's business, not this one's.
        noise = bytes(s.rng.choice([b for b in range(256) if b != framing.START1]) for _ in range(s.rng.randint(1, 64)))
        s.radio.emit_raw(noise + b"\n")
        s.send(s.amina.position())
    s.press("amina")
    s.radio.garbage(0.0)


def corrupt(s: Stage) -> None:
    join(s)
    s.radio.emit_payload(b"\xff\xff\xff\xff\x0f")                        # not a FromRadio
    s.radio.emit_payload(b"\x12\x05\x0d\x01\x02")                         # packet field cut short
    s.radio.emit_raw(framing.encode(b"x" * 600)[:4] + b"y" * 80)          # oversized length
    bad_pos = s.amina.position()
    bad_pos.decoded.payload = b"\x0d\x01"                                 # truncated Position
    s.send(bad_pos)
    s.press("amina")


def corpus(s: Stage) -> None:
    """The real packets recorded on the public LongFast channel, heard by the station's radio
    on its public secondary channel (corrupt lines handed over as the raw frames they are)."""
    if s.corpus_dir is None:
        raise RuntimeError("the corpus scenario needs the corpora folder (--corpus DIR)")
    ndjson = s.corpus_dir / "meshtastic" / "mqtt-longfast-2025.packets.ndjson"
    b64 = (s.corpus_dir / "meshtastic" / "mqtt-longfast-2025.b64.txt").read_text().splitlines()
    public = public_channel()
    for line in ndjson.read_text().splitlines():
        rec = json.loads(line)
        if "error" in rec:
            raw = base64.b64decode(b64[rec["line"] - 1] + "==")
            s.radio.emit_payload(raw)
        else:
            s.radio.hear(mesh_pb2.MeshPacket.FromString(base64.b64decode(rec["packet_b64"])), None, public)


def stream(s: Stage) -> None:
    """Steady mixed traffic until stopped: presses, moves, telemetry. For soak and crash tests."""
    join(s)
    people = [s.amina, s.bashir, s.chen]
    i = 0
    while not s.stop.is_set():
        b = people[i % 3]
        kind = i % 10
        if kind == 0:
            s.send(b.text("SOS"))
        elif kind < 6:
            lat = (b.lat or 14.7) + s.rng.uniform(-0.01, 0.01)
            lon = (b.lon or -17.45) + s.rng.uniform(-0.01, 0.01)
            s.send(b.position(lat, lon))
        else:
            s.send(b.telemetry(s.rng.randint(10, 100), 3.7))
        i += 1
        s.pause(0.05)
        if s.speed == 0:
            time.sleep(0.001)


def demo(s: Stage) -> None:
    """A story for newcomers: bracelets join, Amina presses her button and moves, a visitor's
    node cries SOS on the public channel, Chen's NMEA bracelet reports; then ordinary traffic."""
    join(s)
    s.pause(3)
    s.press("amina")
    for i in range(1, 4):
        s.pause(4)
        s.send(s.amina.position(s.amina.lat + 0.0008, s.amina.lon + 0.0004))
    s.pause(5)
    s.send(s.visitor.nodeinfo())
    s.send(s.visitor.text("SOS"))
    s.pause(5)
    s.send(s.chen.text(f"SOS {rmc(14.7001, -17.4502, time.time())}"))
    while not s.stop.is_set():
        s.pause(20)
        s.send(s.bashir.position(s.bashir.lat + s.rng.uniform(-0.002, 0.002),
                                 s.bashir.lon + s.rng.uniform(-0.002, 0.002)))
        s.send(s.bashir.telemetry(s.rng.randint(40, 60), 3.8))
        if s.speed == 0:
            break


def flood(s: Stage) -> None:
    """As many packets as the link takes until stopped, for throughput benchmarks: positions,
    telemetry and plain text from twenty nodes, every one unique."""
    nodes = [Bracelet(num=0x10000000 + i, long_name=f"Node {i}", short_name=f"N{i:02d}", lat=14.6 + i * 0.01,
                      lon=-17.4, rng=random.Random(i)) for i in range(20)]
    i = 0
    while not s.stop.is_set():
        b = nodes[i % 20]
        kind = i % 3
        if kind == 0:
            s.send(b.position(b.lat + (i % 7) * 1e-4, b.lon), sender=b)
        elif kind == 1:
            s.send(b.telemetry(50 + i % 50, 3.8), sender=b)
        else:
            s.send(b.text(f"status ok {i}"), sender=b)
        i += 1


def paced(s: Stage) -> None:
    """Ten text packets a second, each carrying the moment it was written to the link, for
    wire-to-commit latency."""
    b = s.amina
    for _ in range(300):
        if s.stop.is_set():
            return
        s.send(b.text(f"t={time.time():.6f}"))
        s.pause(0.1)


def sos_paced(s: Stage) -> None:
    """Amina's SOS ten times a second on the office channel, each carrying the moment it was
    written: a verified wearer's alerts for wire-to-commit latency (`siege` adds the attack)."""
    for _ in range(600):
        if s.stop.is_set():
            return
        s.send(s.amina.text(f"t={time.time():.6f} SOS"))
        s.pause(0.1)


def siege(s: Stage) -> None:
    """Amina's SOS ten times a second (on the office channel, each carrying the moment it was
    written, for wire-to-commit latency) while the mesh is attacked: 250 fake SOS from made-up
    numbers at ten a second, and twenty wrong PINs a second sent as direct messages under her
    number by a node that knows the public channel's key (issue 11's figures). Thirty packets a
    second is far beyond what a LoRa channel carries (LongFast: about one a second)."""
    station = s.radio.node_num
    fakes = [Bracelet(num=0x30000000 + i, long_name=f"Fake {i}", short_name=f"F{i:03d}"[-4:], device="heltec-v3",
                     channel=public_channel(), rng=random.Random(500 + i), knows_station_key=False) for i in range(250)]
    guesser = Bracelet(num=s.amina.num, long_name="Amina D.", short_name="AMI", device="heltec-v3",
                       channel=public_channel(), rng=random.Random(99), knows_station_key=False, key_seed="attacker")
    for i in range(1200):
        if s.stop.is_set():
            return
        if i % 2 == 0:
            s.send(s.amina.text(f"t={time.time():.6f} SOS"))
        elif i // 2 < len(fakes):
            s.send(fakes[i // 2].text("SOS"), sender=fakes[i // 2])
        s.send(guesser.message_to(station, f"SAFE {100000 + i}"), sender=guesser)
        s.pause(0.05)


def busy_mesh(s: Stage) -> None:
    """Five packets a second from twenty wearers until stopped, every fifth a canned "SOS <n>"
    (numbered, so that what a station restart loses can be counted), the others positions and
    telemetry."""
    nodes = [Bracelet(num=0x20000000 + i, long_name=f"Wearer {i}", short_name=f"W{i:02d}", lat=14.6 + i * 0.01,
                      lon=-17.4, device="techo", rng=random.Random(100 + i)) for i in range(20)]
    for b in nodes:
        s.radio.add_node(b)
    i = 0
    while not s.stop.is_set():
        b = nodes[i % 20]
        if i % 5 == 0:
            s.act(b, b.canned(f"SOS {i // 5}"))
        elif i % 2:
            s.send(b.position(b.lat + (i % 7) * 1e-4, b.lon), sender=b)
        else:
            s.send(b.telemetry(50 + i % 50, 3.8), sender=b)
        i += 1
        s.pause(0.2)
        if s.speed == 0:
            time.sleep(0.001)


def trickle(s: Stage) -> None:
    """One packet a second until stopped, positions and telemetry from the cast in turn, for what
    the station writes to its SD card in a day. A load figure, not a real mesh's pace: stock
    firmware broadcasts position and device telemetry once an hour by default
    (src/mesh/Default.h:18-19 at v2.7.26), so a real office mesh is far quieter than this."""
    people = [s.people[name] for name in KNOWN]
    i = 0
    while not s.stop.is_set():
        b = people[i % len(people)]
        if i % 2:
            s.send(b.position(b.lat + (i % 7) * 1e-4, b.lon), sender=b)
        else:
            s.send(b.telemetry(90 - i % 50, 3.9), sender=b)
        i += 1
        s.pause(1.0)
        if s.speed == 0:
            time.sleep(0.001)


def idle(s: Stage) -> None:
    """Nothing happens: the radio only answers the handshake and heartbeats (where it does)."""


SCENARIOS: dict[str, Callable[[Stage], None]] = {
    "demo": demo, "join": join, "sos": sos, "sos-no-fix": sos_no_fix, "triggers": triggers,
    "moving": moving, "cancel": cancel, "wrong-pin": wrong_pin, "duress": duress,
    "battery": battery, "duplicates": duplicates, "burst": burst, "sensor": sensor,
    "public-channel": public_channel_press, "t1000e": t1000e, "two-presses": two_presses,
    "unregistered": unregistered, "impostor": impostor, "nmea": nmea, "garbage": garbage,
    "corrupt": corrupt, "corpus": corpus, "stream": stream, "flood": flood, "paced": paced,
    "busy-mesh": busy_mesh, "trickle": trickle, "sos-paced": sos_paced, "siege": siege,
    "idle": idle,
}


def run(name: str, stage: Stage) -> None:
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    scenario(stage)
