"""The 337 real packets heard on the public LongFast channel, replayed through the virtual radio
and the real library: every parseable packet stored once, names and positions as recorded,
the corrupt lines counted."""

from __future__ import annotations

import base64
import json

import pytest
from meshtastic.protobuf import mesh_pb2

from station.decode.packets import Rules, classify, NodeInfo, Position


def corpus_records(corpora):
    lines = (corpora / "meshtastic" / "mqtt-longfast-2025.packets.ndjson").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def expected(corpora):
    """What the corpus says, computed from the protobufs independently of the station's tables."""
    good = [r for r in corpus_records(corpora) if "error" not in r]
    first: dict = {}
    for r in good:
        p = mesh_pb2.MeshPacket.FromString(base64.b64decode(r["packet_b64"]))
        first.setdefault((getattr(p, "from"), p.id), p)
    names, positions = {}, {}
    for (sender, _), p in first.items():
        if p.decoded.portnum == 4:
            u = mesh_pb2.User.FromString(p.decoded.payload)
            names[sender] = u.long_name
        if p.decoded.portnum == 3:
            pos = mesh_pb2.Position.FromString(p.decoded.payload)
            if pos.latitude_i or pos.longitude_i:
                positions.setdefault(sender, set()).add((pos.latitude_i, pos.longitude_i))
    return {
        "parseable": len(good),
        "unique": len(first),
        "corrupt": sum(1 for r in corpus_records(corpora) if "error" in r),
        "names": names,
        "positions": positions,
    }


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_corpus_replay_stores_every_parseable_packet_once(harness, corpora, expected, transport):
    h = harness("corpus", transport, corpus_dir=corpora, register=False)
    h.settle(timeout=60)
    assert expected["parseable"] == 323 and expected["unique"] == 261 and expected["corrupt"] == 14
    assert h.count("SELECT COUNT(*) FROM packets") == expected["unique"]
    assert h.count("SELECT SUM(duplicates) FROM packets") == expected["parseable"] - expected["unique"]
    assert h.count("SELECT COUNT(*) FROM rejects WHERE source='radio' AND reason='corrupt frame'") == expected["corrupt"]
    assert h.station.link.state.connects == 1


def test_corpus_node_names_and_positions_match_the_recording(harness, corpora, expected):
    h = harness("corpus", "pty", corpus_dir=corpora, register=False)
    h.settle(timeout=60)
    names = dict(h.rows("SELECT num, long_name FROM nodes WHERE long_name IS NOT NULL"))
    assert names == expected["names"]
    stored: dict = {}
    for num, lat, lon in h.rows("SELECT node_num, lat, lon FROM positions"):
        stored.setdefault(num, set()).add((round(lat * 1e7), round(lon * 1e7)))
    assert stored == expected["positions"]


def test_corpus_packets_classify_as_their_port_implies(corpora):
    """The decoder alone, packet by packet, against the protobufs decoded independently."""
    rules = Rules()
    for rec in corpus_records(corpora):
        if "error" in rec:
            continue
        p = mesh_pb2.MeshPacket.FromString(base64.b64decode(rec["packet_b64"]))
        result = classify(p, rules)
        assert result.port == rec["packet"]["decoded"]["portnum"]
        if result.port == "NODEINFO_APP":
            user = mesh_pb2.User.FromString(p.decoded.payload)
            assert [i.long_name for i in result.of(NodeInfo)] == [user.long_name]
        if result.port == "POSITION_APP":
            pos = mesh_pb2.Position.FromString(p.decoded.payload)
            has_fix = bool(pos.latitude_i or pos.longitude_i)
            assert [(round(o.lat * 1e7), round(o.lon * 1e7)) for o in result.of(Position)] == \
                ([(pos.latitude_i, pos.longitude_i)] if has_fix else [])
