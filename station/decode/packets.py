"""What a Meshtastic packet means for the station: alerts, cancels, positions, telemetry, names.

`classify` takes the raw `MeshPacket` protobuf that the meshtastic library hands over and
returns observations. It never raises for bad input: a payload that does not decode becomes a
`Problem` with a reason, and the raw packet is stored regardless by the caller.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from meshtastic.protobuf import mesh_pb2, portnums_pb2, telemetry_pb2

from station.decode import nmea, precision

PORT = portnums_pb2.PortNum
BELL = "\x07"
MAX_TEXT = 512  # a LoRa payload is at most ~230 bytes; anything longer is not from a bracelet


@dataclass(frozen=True)
class Alert:
    source: str            # alert_app, detection_sensor, bell, keyword, serial
    text: str


@dataclass(frozen=True)
class Cancel:
    pin: str
    keyword: str


@dataclass(frozen=True)
class Position:
    lat: float
    lon: float
    source: str            # position_app or nmea
    fix_time: float | None = None
    alt: float | None = None
    sats: int | None = None
    precision_bits: int | None = None   # the channel's position_precision; None: full precision
    quality: int | None = None

    @property
    def uncertainty_m(self) -> float | None:
        return precision.uncertainty_m(self.precision_bits)


@dataclass(frozen=True)
class Telemetry:
    battery_level: int | None           # percent; None on external power
    voltage: float | None
    channel_util: float | None
    air_util_tx: float | None
    uptime_s: int | None
    external_power: bool = False


@dataclass(frozen=True)
class SensorState:
    """A detection sensor reporting its pin state ("<name> state: 0|1"): on release and every
    state_broadcast_secs (DetectionSensorModule.cpp:99-115,142-157). Never a press."""
    name: str
    state: int


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    long_name: str
    short_name: str
    hw_model: str
    role: str
    public_key: str | None   # base64, as Meshtastic shows it


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Routing:
    request_id: int
    error: str               # NONE means delivered


@dataclass(frozen=True)
class Problem:
    reason: str
    detail: str = ""


@dataclass
class Classified:
    port: str
    observations: list = field(default_factory=list)

    def of(self, kind: type) -> list:
        return [o for o in self.observations if isinstance(o, kind)]


@dataclass(frozen=True)
class Rules:
    keywords: tuple[str, ...] = ("SOS",)
    cancel_keywords: tuple[str, ...] = ("SAFE", "CANCEL")
    # A check-in is a text of the word alone (station/watch). The bell a T-Echo appends to every
    # canned message when send_bell is on (CannedMessageModule.cpp:1059-1062) does not make a
    # canned "OK" an alert.
    checkin_words: tuple[str, ...] = ("OK",)


def is_checkin_text(text: str, words: tuple[str, ...]) -> bool:
    bare = re.sub(r"[\s.!\x07]+$", "", text.replace(BELL, "")).strip()
    return any(bare.casefold() == w.casefold() for w in words)


def port_name(portnum: int) -> str:
    try:
        return PORT.Name(portnum)
    except ValueError:
        return f"PORT_{portnum}"


def decode_text(payload: bytes) -> tuple[str, Problem | None]:
    """Payload bytes as text; invalid UTF-8 is kept (replaced) and reported, never fatal."""
    problem = None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = payload.decode("utf-8", errors="replace")
        problem = Problem("non-utf8 text")
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
        problem = Problem("text too long")
    return text, problem


def _keyword_regex(words: tuple[str, ...]) -> re.Pattern:
    alts = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w]){'(?:' + alts + ')'}(?![\w])", re.IGNORECASE)


def classify_text(text: str, rules: Rules, *, source: str) -> list:
    """Observations in a text or serial payload: NMEA fixes, a cancel, or an alert keyword."""
    out: list = []
    for sentence in nmea.find_sentences(text):
        try:
            fix = nmea.parse(sentence)
        except nmea.NmeaReject as e:
            out.append(Problem(f"nmea {e.reason}", sentence[:80]))
            continue
        if fix is not None:
            when = fix.datetime.timestamp() if fix.datetime else None
            out.append(Position(fix.lat, fix.lon, "nmea", when, fix.alt, fix.sats, None, fix.quality))
    # Sentences are removed before keyword matching so that a talker id cannot look like a word.
    plain = nmea._IN_TEXT.sub(" ", text)
    cancel_re = re.compile(
        r"(?<![\w])(" + "|".join(re.escape(w) for w in rules.cancel_keywords) + r")\W{0,3}(\d{4,8})(?!\d)",
        re.IGNORECASE)
    m = cancel_re.search(plain)
    if m:
        out.append(Cancel(pin=m.group(2), keyword=m.group(1).upper()))
        return out
    if source == "text" and is_checkin_text(text, rules.checkin_words):
        return out
    if BELL in text:
        out.append(Alert("bell", text))
    elif _keyword_regex(rules.keywords).search(plain):
        out.append(Alert("keyword" if source == "text" else source, text))
    return out


def _position(payload: bytes) -> list:
    p = mesh_pb2.Position.FromString(payload)
    if not p.HasField("latitude_i") or not p.HasField("longitude_i"):
        return [Problem("position without fix")]
    lat, lon = p.latitude_i * 1e-7, p.longitude_i * 1e-7
    if lat == 0 and lon == 0:
        return [Problem("position without fix")]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return [Problem("position out of range", f"{lat},{lon}")]
    return [Position(
        lat, lon, "position_app",
        fix_time=float(p.time) if p.time else None,
        alt=float(p.altitude) if p.HasField("altitude") else None,
        sats=p.sats_in_view or None,
        precision_bits=p.precision_bits or None,
    )]


# DeviceTelemetry.cpp:18,107-109: the level reads 101 when the device runs on external power.
EXTERNAL_POWER_LEVEL = 101


def _telemetry(payload: bytes) -> list:
    t = telemetry_pb2.Telemetry.FromString(payload)
    if not t.HasField("device_metrics"):
        return []
    m = t.device_metrics
    level = m.battery_level if m.HasField("battery_level") else None
    external = level is not None and level >= EXTERNAL_POWER_LEVEL
    out: list = [Telemetry(
        None if external else level,
        round(m.voltage, 3) if m.HasField("voltage") else None,
        round(m.channel_utilization, 2) if m.HasField("channel_utilization") else None,
        round(m.air_util_tx, 2) if m.HasField("air_util_tx") else None,
        m.uptime_seconds if m.HasField("uptime_seconds") else None,
        external,
    )]
    if level is not None and level > EXTERNAL_POWER_LEVEL:
        out.append(Problem("battery level out of range", str(level)))
    return out


# DetectionSensorModule.cpp:119-132 and 142-157: "<name> detected" (a bell follows with send_bell)
# and "<name> state: 0|1". The name is the module's configured name, at most 20 characters.
_SENSOR_STATE = re.compile(r"^(?P<name>.{0,40}) state: (?P<state>-?\d+)$", re.DOTALL)


def _detection(text: str) -> list:
    m = _SENSOR_STATE.match(text)
    if m:
        return [SensorState(m.group("name"), int(m.group("state")))]
    # "detected", or anything else a sensor sends: a message on this port comes from a trigger,
    # and a format we do not know must not silence an alarm.
    return [Alert("detection_sensor", text)]


def _nodeinfo(payload: bytes) -> list:
    u = mesh_pb2.User.FromString(payload)
    key = base64.b64encode(u.public_key).decode() if u.public_key else None
    return [NodeInfo(
        node_id=u.id, long_name=u.long_name, short_name=u.short_name,
        hw_model=mesh_pb2.HardwareModel.Name(u.hw_model) if u.hw_model in mesh_pb2.HardwareModel.values()
        else str(u.hw_model),
        role=str(u.role), public_key=key,
    )]


def _routing(payload: bytes, request_id: int) -> list:
    r = mesh_pb2.Routing.FromString(payload)
    reason = mesh_pb2.Routing.Error.Name(r.error_reason) if r.error_reason in mesh_pb2.Routing.Error.values() \
        else str(r.error_reason)
    return [Routing(request_id, reason)] if request_id else []


def classify(packet: mesh_pb2.MeshPacket, rules: Rules) -> Classified:
    if not packet.HasField("decoded"):
        return Classified("ENCRYPTED", [Problem("encrypted")])
    d = packet.decoded
    port = port_name(d.portnum)
    result = Classified(port)
    obs = result.observations
    try:
        if d.portnum in (PORT.TEXT_MESSAGE_APP, PORT.SERIAL_APP, PORT.DETECTION_SENSOR_APP, PORT.ALERT_APP):
            text, problem = decode_text(d.payload)
            if problem:
                obs.append(problem)
            if d.portnum == PORT.ALERT_APP:
                obs.append(Alert("alert_app", text))
                obs.extend(o for o in classify_text(text, rules, source="alert_app") if isinstance(o, Position))
            elif d.portnum == PORT.DETECTION_SENSOR_APP:
                obs.extend(_detection(text))
            else:
                found = classify_text(text, rules, source="text" if d.portnum == PORT.TEXT_MESSAGE_APP else "serial")
                obs.extend(found)
                if d.portnum == PORT.TEXT_MESSAGE_APP and not any(isinstance(o, (Alert, Cancel)) for o in found):
                    obs.append(Text(text))
        elif d.portnum == PORT.POSITION_APP:
            obs.extend(_position(d.payload))
        elif d.portnum == PORT.TELEMETRY_APP:
            obs.extend(_telemetry(d.payload))
        elif d.portnum == PORT.NODEINFO_APP:
            obs.extend(_nodeinfo(d.payload))
        elif d.portnum == PORT.ROUTING_APP:
            obs.extend(_routing(d.payload, d.request_id))
    except DecodeError as e:
        obs.append(Problem("corrupt payload", f"{port}: {e}"[:120]))
    except (ValueError, TypeError, OverflowError) as e:
        obs.append(Problem("bad payload", f"{port}: {e}"[:120]))
    return result
