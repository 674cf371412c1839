"""Named scenarios for the virtual radio: what the bracelets do, step by step.

Each scenario is a function of a `Stage`; `stage.pause(s)` is scaled by the speed, so tests run
them in milliseconds and the demo at human pace. The expected effect of each is asserted in
tests/test_scenarios.py.
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

from station.radio import framing
from station.radio.virtual.bracelets import Bracelet, cast, gga, rmc
from station.radio.virtual.device import VirtualRadio


@dataclass
class Stage:
    radio: VirtualRadio
    speed: float = 1.0                      # 0: no pauses at all
    stop: threading.Event = field(default_factory=threading.Event)
    people: dict[str, Bracelet] = field(default_factory=cast)
    corpus_dir: Path | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(3))

    def __post_init__(self) -> None:
        # The radio can acknowledge direct messages only for nodes in its node database.
        for name in ("amina", "bashir", "chen", "visitor"):
            if name in self.people:
                self.radio.add_node(self.people[name])

    def pause(self, seconds: float) -> None:
        if self.speed > 0:
            self.stop.wait(seconds / self.speed)

    def send(self, packet, times: int = 1) -> None:
        for i in range(times):
            if i:
                packet.hop_limit = max(0, packet.hop_limit - 1)  # a rebroadcast, one hop further
            self.radio.emit_packet(packet)

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
    s.send(s.amina.alert("SOS"))


def sos_no_fix(s: Stage) -> None:
    join(s)
    s.pause(1)
    s.send(s.bashir.position(fix=False))   # the bracelet lost its fix indoors
    s.send(s.bashir.text("SOS"))
    s.send(s.chen.alert("SOS"))            # Chen never had a fix at all


def triggers(s: Stage) -> None:
    """The four ways a bracelet raises an alert, one bracelet each."""
    join(s)
    s.send(s.amina.alert("SOS"))
    s.send(s.bashir.detection("Alarm button detected"))
    s.send(s.chen.text("\x07"))
    s.send(s.visitor.nodeinfo())
    s.send(s.visitor.text("please help, SOS"))


def moving(s: Stage) -> None:
    join(s)
    s.send(s.amina.alert("SOS"))
    lat, lon = s.amina.lat, s.amina.lon
    for i in range(1, 6):
        s.pause(1)
        s.send(s.amina.position(lat + i * 0.001, lon + i * 0.0005))


def _alert_then_cancel(s: Stage, pin: str) -> None:
    join(s)
    s.send(s.amina.alert("SOS"))
    s.pause(2)
    s.send(s.amina.text(f"SAFE {pin}"))


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


def duplicates(s: Stage) -> None:
    join(s)
    s.send(s.amina.alert("SOS"), times=3)
    s.send(s.amina.position(), times=2)


def burst(s: Stage) -> None:
    join(s)
    for _ in range(10):
        s.send(s.amina.alert("SOS"))
        s.pause(0.3)


def unregistered(s: Stage) -> None:
    join(s)
    s.send(s.visitor.nodeinfo())
    s.send(s.visitor.position())
    s.send(s.visitor.text("SOS"))


def impostor(s: Stage) -> None:
    join(s)
    # Another node takes Amina's name.
    s.send(s.impostor.nodeinfo())
    s.send(s.impostor.alert("SOS"))
    # Bashir's node number, announcing a different key.
    fake = Bracelet(num=s.bashir.num, long_name=s.bashir.long_name, short_name=s.bashir.short_name,
                    public_key=b"\x42" * 32, rng=random.Random(99))
    s.send(fake.nodeinfo())
    s.send(fake.alert("SOS"))


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
    s.send(s.amina.alert("SOS"))
    s.radio.garbage(0.0)


def corrupt(s: Stage) -> None:
    join(s)
    s.radio.emit_payload(b"\xff\xff\xff\xff\x0f")                        # not a FromRadio
    s.radio.emit_payload(b"\x12\x05\x0d\x01\x02")                         # packet field cut short
    s.radio.emit_raw(framing.encode(b"x" * 600)[:4] + b"y" * 80)          # oversized length
    bad_pos = s.amina.position()
    bad_pos.decoded.payload = b"\x0d\x01"                                 # truncated Position
    s.send(bad_pos)
    s.send(s.amina.alert("SOS"))


def corpus(s: Stage) -> None:
    """Replay the real packets recorded on the public LongFast channel, corrupt ones included."""
    if s.corpus_dir is None:
        raise RuntimeError("the corpus scenario needs the corpora folder (--corpus DIR)")
    from meshtastic.protobuf import mesh_pb2
    ndjson = s.corpus_dir / "meshtastic" / "mqtt-longfast-2025.packets.ndjson"
    b64 = (s.corpus_dir / "meshtastic" / "mqtt-longfast-2025.b64.txt").read_text().splitlines()
    for line in ndjson.read_text().splitlines():
        rec = json.loads(line)
        if "error" in rec:
            raw = base64.b64decode(b64[rec["line"] - 1] + "==")
            s.radio.emit_payload(raw)
        else:
            s.radio.emit_packet(mesh_pb2.MeshPacket.FromString(base64.b64decode(rec["packet_b64"])))


def stream(s: Stage) -> None:
    """Steady mixed traffic until stopped: presses, moves, telemetry. For soak and crash tests."""
    join(s)
    people = [s.amina, s.bashir, s.chen]
    i = 0
    while not s.stop.is_set():
        b = people[i % 3]
        kind = i % 10
        if kind == 0:
            s.send(b.alert("SOS"))
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
    """A story for newcomers: bracelets join, Amina raises an alert and moves, a visitor's node
    cries SOS, Chen's NMEA bracelet reports; then ordinary traffic goes on."""
    join(s)
    s.pause(3)
    s.send(s.amina.alert("SOS"))
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


FLOOD_PACKETS = 5000


def flood(s: Stage) -> None:
    """As many packets as the link takes, for throughput benchmarks: positions, telemetry and
    plain text from twenty nodes, every one unique."""
    nodes = [Bracelet(num=0x10000000 + i, long_name=f"Node {i}", short_name=f"N{i:02d}", lat=14.6 + i * 0.01,
                      lon=-17.4, rng=random.Random(i)) for i in range(20)]
    for i in range(FLOOD_PACKETS):
        if s.stop.is_set():
            return
        b = nodes[i % 20]
        kind = i % 3
        if kind == 0:
            s.send(b.position(b.lat + (i % 7) * 1e-4, b.lon))
        elif kind == 1:
            s.send(b.telemetry(50 + i % 50, 3.8))
        else:
            s.send(b.text(f"status ok {i}"))


def paced(s: Stage) -> None:
    """Ten text packets a second, each carrying the moment it was written to the link, for
    wire-to-commit latency."""
    b = s.amina
    for _ in range(300):
        if s.stop.is_set():
            return
        s.send(b.text(f"t={time.time():.6f}"))
        s.pause(0.1)


def idle(s: Stage) -> None:
    """Nothing happens: the radio only answers the handshake and heartbeats."""


SCENARIOS: dict[str, Callable[[Stage], None]] = {
    "demo": demo, "join": join, "sos": sos, "sos-no-fix": sos_no_fix, "triggers": triggers,
    "moving": moving, "cancel": cancel, "wrong-pin": wrong_pin, "duress": duress,
    "battery": battery, "duplicates": duplicates, "burst": burst, "unregistered": unregistered,
    "impostor": impostor, "nmea": nmea, "garbage": garbage, "corrupt": corrupt, "corpus": corpus,
    "stream": stream, "flood": flood, "paced": paced, "idle": idle,
}


def run(name: str, stage: Stage) -> None:
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    scenario(stage)
