"""The 337 real packets heard on the public LongFast channel (shared/corpora/meshtastic), replayed
through the virtual radio's air and the real library: what a real radio hands the station is
stored once, as recorded; what it would not hand over (packets for other nodes) never arrives;
and what the corpus holds is read as the firmware meant it: precision bits, battery 101,
public keys, routing answers, traceroutes, plain texts."""

from __future__ import annotations

import base64
import collections
import json

import pytest
from meshtastic.protobuf import mesh_pb2, portnums_pb2, telemetry_pb2

from station.decode.packets import Alert, NodeInfo, Position, Routing, Rules, Telemetry, classify

PORT = portnums_pb2.PortNum
BROADCAST = 0xFFFFFFFF


def corpus_records(corpora):
    lines = (corpora / "meshtastic" / "mqtt-longfast-2025.packets.ndjson").read_text().splitlines()
    return [json.loads(line) for line in lines]


def corpus_packets(corpora) -> list[mesh_pb2.MeshPacket]:
    return [mesh_pb2.MeshPacket.FromString(base64.b64decode(r["packet_b64"]))
            for r in corpus_records(corpora) if "error" not in r]


@pytest.fixture(scope="module")
def expected(corpora):
    """What the corpus says, computed from the protobufs independently of the station's tables."""
    packets = corpus_packets(corpora)
    first: dict = {}
    for p in packets:
        first.setdefault((getattr(p, "from"), p.id), p)
    heard = {k: p for k, p in first.items() if p.to == BROADCAST}   # what a radio hands its host
    names, positions, bits, keys, levels = {}, {}, collections.Counter(), {}, collections.Counter()
    for (sender, _), p in heard.items():
        port = p.decoded.portnum
        if port == PORT.NODEINFO_APP:
            u = mesh_pb2.User.FromString(p.decoded.payload)
            names[sender] = u.long_name
            if u.public_key:
                keys[sender] = base64.b64encode(u.public_key).decode()
        if port == PORT.POSITION_APP:
            pos = mesh_pb2.Position.FromString(p.decoded.payload)
            if pos.latitude_i or pos.longitude_i:
                positions.setdefault(sender, set()).add((pos.latitude_i, pos.longitude_i))
                bits[pos.precision_bits or None] += 1
        if port == PORT.TELEMETRY_APP:
            t = telemetry_pb2.Telemetry.FromString(p.decoded.payload)
            if t.HasField("device_metrics") and t.device_metrics.HasField("battery_level"):
                levels[t.device_metrics.battery_level] += 1
    return {
        "parseable": len(packets),
        "unique": len(first),
        "heard_unique": len(heard),
        "heard_all": sum(1 for p in packets if p.to == BROADCAST),
        "elsewhere": sum(1 for p in first.values() if p.to != BROADCAST),
        "corrupt": sum(1 for r in corpus_records(corpora) if "error" in r),
        "names": names, "positions": positions, "bits": bits, "keys": keys, "levels": levels,
    }


def test_the_corpus_is_what_its_readme_says(expected):
    assert (expected["parseable"], expected["unique"], expected["corrupt"]) == (323, 261, 14)
    # 76 of the unique packets are addressed to one node (node infos answering a request,
    # traceroutes, position replies, routing answers): a radio never hands those to its host.
    assert expected["elsewhere"] == 76


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_corpus_heard_by_a_radio_stores_each_broadcast_once_and_nothing_meant_for_others(
        harness, corpora, expected, transport):
    h = harness("corpus", transport, corpus_dir=corpora, register=False)
    h.settle(timeout=60)
    assert h.count("SELECT COUNT(*) FROM packets") == expected["heard_unique"]
    assert h.count("SELECT SUM(duplicates) FROM packets") == expected["heard_all"] - expected["heard_unique"]
    assert h.count("SELECT COUNT(*) FROM packets WHERE to_num != ?", (BROADCAST,)) == 0
    assert h.count("SELECT COUNT(*) FROM rejects WHERE source='radio' AND reason='corrupt frame'") == expected["corrupt"]
    assert h.station.link.state.connects == 1


def test_corpus_names_positions_precision_keys_and_power_match_the_recording(harness, corpora, expected):
    h = harness("corpus", "pty", corpus_dir=corpora, register=False)
    h.settle(timeout=60)
    names = dict(h.rows("SELECT num, long_name FROM nodes WHERE long_name IS NOT NULL"))
    assert names == expected["names"]
    stored: dict = {}
    for num, lat, lon in h.rows("SELECT node_num, lat, lon FROM positions"):
        stored.setdefault(num, set()).add((round(lat * 1e7), round(lon * 1e7)))
    assert stored == expected["positions"]
    # Precision as each sender's channel set it: mostly 13 to 16 bits, one full-precision fix.
    assert collections.Counter(r[0] for r in h.rows("SELECT precision_bits FROM positions")) == expected["bits"]
    assert expected["bits"][32] == 1 and expected["bits"][13] > 20
    assert dict(h.rows("SELECT num, public_key FROM nodes WHERE public_key IS NOT NULL")) == expected["keys"]
    # 101 is "on external power", never shown as a percentage; the others are kept as sent.
    got = collections.Counter()
    for level, external in h.rows("SELECT battery_level, external_power FROM telemetry"):
        got[101 if external else level] += 1
    assert got == expected["levels"] and expected["levels"][101] > 0
    assert h.count("SELECT COUNT(*) FROM telemetry WHERE battery_level > 100") == 0
    # Two plain texts on the public channel ("Abcdefgh", "Testing 123456"): no alert.
    assert h.count("SELECT COUNT(*) FROM packets WHERE port='TEXT_MESSAGE_APP'") == 2
    assert h.count("SELECT COUNT(*) FROM incidents") == 0


def test_packets_between_other_nodes_handed_over_anyway_never_alert_nor_answer_our_receipts(harness, corpora):
    """A bridge (MQTT, another station) may pass on what a radio would not: DMs between other
    nodes. Their positions are still news of the sender; their words are not a call for help."""
    h = harness("idle", "pty", register=False)
    own = h.station.link.state.node_num
    packets = [p for p in corpus_packets(corpora) if p.to != BROADCAST]
    dm_sos = mesh_pb2.MeshPacket()
    dm_sos.CopyFrom(packets[0])
    dm_sos.id ^= 0x5A5A
    dm_sos.decoded.portnum = PORT.TEXT_MESSAGE_APP
    dm_sos.decoded.payload = b"SOS"
    for p in [*packets, dm_sos]:
        h.sim.radio.emit_packet(p)
    h.settle()
    assert own not in {p.to for p in packets}
    assert h.count("SELECT COUNT(*) FROM incidents") == 0
    [decode] = h.rows("SELECT decode FROM packets WHERE port='TEXT_MESSAGE_APP'")
    assert decode[0] == f"addressed to !{dm_sos.to:08x}, not to the station"
    assert h.count("SELECT COUNT(*) FROM packets WHERE port='TRACEROUTE_APP'") == len(
        {(getattr(p, "from"), p.id) for p in packets if p.decoded.portnum == PORT.TRACEROUTE_APP})
    assert h.count("SELECT COUNT(*) FROM receipts") == 0


def test_corpus_packets_classify_as_their_port_implies(corpora):
    """The decoder alone, packet by packet, against the protobufs decoded independently."""
    rules = Rules()
    routing = 0
    for p in corpus_packets(corpora):
        result = classify(p, rules)
        assert result.port == PORT.Name(p.decoded.portnum)
        if p.decoded.portnum == PORT.NODEINFO_APP:
            user = mesh_pb2.User.FromString(p.decoded.payload)
            assert [i.long_name for i in result.of(NodeInfo)] == [user.long_name]
            assert [i.public_key for i in result.of(NodeInfo)] == \
                [base64.b64encode(user.public_key).decode() if user.public_key else None]
        if p.decoded.portnum == PORT.POSITION_APP:
            pos = mesh_pb2.Position.FromString(p.decoded.payload)
            has_fix = bool(pos.latitude_i or pos.longitude_i)
            assert [(round(o.lat * 1e7), round(o.lon * 1e7), o.precision_bits) for o in result.of(Position)] == \
                ([(pos.latitude_i, pos.longitude_i, pos.precision_bits or None)] if has_fix else [])
        if p.decoded.portnum == PORT.TELEMETRY_APP:
            t = telemetry_pb2.Telemetry.FromString(p.decoded.payload)
            if t.HasField("device_metrics"):
                [obs] = result.of(Telemetry)
                assert obs.external_power is (t.device_metrics.battery_level == 101)
        if p.decoded.portnum == PORT.ROUTING_APP:
            routing += 1
            r = mesh_pb2.Routing.FromString(p.decoded.payload)
            assert result.of(Routing) == [Routing(p.decoded.request_id,
                                                  mesh_pb2.Routing.Error.Name(r.error_reason))]
        if p.decoded.portnum == PORT.TEXT_MESSAGE_APP:
            assert result.of(Alert) == []
    assert routing == 2
