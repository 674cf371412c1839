"""Property tests: random bytes, frames, packets and NMEA lines into every decoder. Nothing may
raise; bad input becomes a counted reason."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st
from meshtastic.protobuf import mesh_pb2, portnums_pb2

from station.decode import nmea
from station.decode.packets import Rules, classify
from station.gps import GpsTracker

RULES = Rules(keywords=("SOS", "HELP"), cancel_keywords=("SAFE",))
PORTS = st.sampled_from([p for p in portnums_pb2.PortNum.values()] + [250, 511])

nmea_like = st.builds(
    lambda talker, kind, fields, cs: f"${talker}{kind}," + ",".join(fields) + (f"*{cs:02X}" if cs is not None else ""),
    st.sampled_from(["GP", "GN", "GL", "GA", "GB", "BD", "P1", "ZZ"]),
    st.sampled_from(["RMC", "GGA", "GLL", "GNS", "ZDA", "GSV", "XXX"]),
    st.lists(st.text(alphabet="0123456789.,NSEWAV-+ |", max_size=12), max_size=16),
    st.one_of(st.none(), st.integers(0, 255)),
)


@given(st.one_of(nmea_like, st.text(max_size=200)))
def test_nmea_parse_returns_or_rejects_but_never_raises_anything_else(line):
    try:
        fix = nmea.parse(line)
    except nmea.NmeaReject as e:
        assert e.reason
        return
    if fix is not None:
        assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180


@given(st.lists(st.one_of(st.binary(max_size=120), nmea_like.map(str.encode)), max_size=30))
def test_gps_tracker_survives_any_lines(lines):
    t = GpsTracker()
    for line in lines:
        t.feed_line(line)
    assert t.state.fixes <= len(lines)


@given(PORTS, st.binary(max_size=300))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_classify_never_raises_on_random_payloads(port, payload):
    p = mesh_pb2.MeshPacket(id=1, to=0xFFFFFFFF)
    setattr(p, "from", 0x1234)
    p.decoded.portnum = port
    p.decoded.payload = payload
    result = classify(p, RULES)
    assert result.port


@given(st.binary(max_size=400))
def test_random_bytes_as_a_packet_either_fail_to_parse_or_classify(raw):
    try:
        p = mesh_pb2.MeshPacket.FromString(raw)
    except Exception:
        return  # the station counts these as corrupt frames
    classify(p, RULES)
