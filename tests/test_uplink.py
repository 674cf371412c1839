"""The mesh heard through Meshtastic's own MQTT uplink (radio/uplink.py): a gateway radio with its
MQTT module on publishes ServiceEnvelopes, and the station takes them as its serial radio's.

From the view of the wearer (her SOS reaches a station that has no radio of its own, through the
office's gateway, and opens a real alert), of the technician (the 337 real envelopes of the
corpus open exactly as recorded, garbage is counted, the Health page says what the uplink does),
and of the adversary (someone who can write to the broker, with or without the channel key:
another gateway's name, a forged PKI envelope, a packet under another key, all dropped and
counted; what a gateway decoded for us proves nothing of the key)."""

from __future__ import annotations

import base64
import json
import os
import shutil

import pytest
from meshtastic.protobuf import mesh_pb2, mqtt_pb2

from station import config
from station.daemon import Station
from station.radio import uplink
from station.radio.virtual.bracelets import OFFICE_CHANNEL, cast
from station.radio.virtual.gateway import Gateway, envelope
from tests.broker import Mosquitto
from tests.conftest import make_config, register_cast, wait_until

GATEWAY = "!0ff1ce01"
AMINA = 0xB5A1E001
OFFICE = uplink.Channel("Natalia", OFFICE_CHANNEL.psk)
LONGFAST = uplink.Channel("LongFast", b"\x01")


def opened(topic, payload, channel=OFFICE, gateways=(GATEWAY,)):
    return uplink.open_envelope(topic, payload, root="msh", channel=channel, gateways=frozenset(gateways))


# -- the real envelopes ----------------------------------------------------------------------------
def test_every_real_envelope_of_the_corpus_opens_as_recorded_or_is_refused_as_garbage(corpora):
    """The 337 envelopes real gateways published on LongFast (shared/corpora/meshtastic), against
    the packets decoded independently beside them: each of the 323 good ones opens to the same
    packet, marked as heard over MQTT; the 14 truncated ones are refused, none crashes."""
    folder = corpora / "meshtastic"
    lines = (folder / "mqtt-longfast-2025.b64.txt").read_text().splitlines()
    records = [json.loads(r) for r in (folder / "mqtt-longfast-2025.packets.ndjson").read_text().splitlines()]
    assert len(lines) == len(records) == 337
    good = refused = 0
    for line, record in zip(lines, records):
        raw = base64.b64decode(line)
        gateway = record.get("gateway_id", "!00000000")
        got = opened(f"msh/2/e/LongFast/{gateway}", raw, LONGFAST, [gateway])
        if "error" in record:
            assert got == uplink.GARBAGE, record["line"]
            refused += 1
            continue
        want = mesh_pb2.MeshPacket.FromString(base64.b64decode(record["packet_b64"]))
        assert isinstance(got, uplink.Opened), (record["line"], got)
        assert got.packet.via_mqtt and not got.packet.pki_encrypted
        assert got.packet.decoded == want.decoded and got.packet.id == want.id
        assert getattr(got.packet, "from") == getattr(want, "from") and got.packet.to == want.to
        # The public default key proves nothing: never the office channel.
        assert got.office is False
        good += 1
    assert (good, refused) == (323, 14)


def test_every_sealed_envelope_of_the_corpus_carries_the_default_channels_hash(corpora):
    """Channels.cpp generateHash over "LongFast" and the expanded default key gives 8: what the
    255 sealed envelopes real gateways published carry."""
    hashes = []
    for line in (corpora / "meshtastic" / "mqtt-longfast-2025.b64.txt").read_text().splitlines():
        try:
            env = mqtt_pb2.ServiceEnvelope.FromString(base64.b64decode(line))
        except Exception:
            continue
        if env.packet.HasField("encrypted"):
            hashes.append(env.packet.channel)
    assert len(hashes) == 255 and set(hashes) == {LONGFAST.hash} == {8}
    assert not LONGFAST.private and OFFICE.private


# -- what someone who can write to the broker tries ---------------------------------------------------
def _amina_sos(**kw):
    amina = cast()["amina"]
    return envelope(amina, amina.text("SOS"), gateway=GATEWAY, **kw)


def _forged_pki():
    amina = cast()["amina"]
    amina.knows_station_key = True
    return envelope(amina, amina.message_to(0x5A7E0001, "SAFE 4321"), gateway=GATEWAY, to_station=0x5A7E0001)


def _under_key(psk: bytes):
    someone = cast()["amina"]
    someone.channel = type(OFFICE_CHANNEL)(name="Natalia", psk=psk)
    return envelope(someone, someone.text("SOS"), gateway=GATEWAY)


def _edited(change):
    topic, payload = _amina_sos()
    env = mqtt_pb2.ServiceEnvelope.FromString(payload)
    change(env)
    return topic, env.SerializeToString()


@pytest.mark.parametrize("name, message, why", [
    ("another gateway's name in the topic", lambda: (_amina_sos()[0].replace(GATEWAY, "!deadbeef"), _amina_sos()[1]),
     uplink.UNKNOWN_GATEWAY),
    ("a topic outside the uplink", lambda: ("msh/2/json/Natalia/" + GATEWAY, _amina_sos()[1]), uplink.BAD_TOPIC),
    ("an envelope naming another gateway than its topic", lambda: _edited(lambda e: setattr(e, "gateway_id", "!deadbeef")),
     uplink.GARBAGE),
    ("a DM sealed with PKI, as a forged cancel would come", _forged_pki, uplink.PKI_SEALED),
    ("the office's channel name under another key", lambda: _under_key(bytes(range(2, 34))), uplink.WRONG_KEY),
    ("the right channel hash but another key", lambda: _edited(lambda e: setattr(e.packet, "encrypted",
                                                                                   bytes(len(e.packet.encrypted)))),
     uplink.WRONG_KEY),
    ("a hop limit the firmware refuses", lambda: _edited(lambda e: setattr(e.packet, "hop_limit", 9)),
     uplink.BAD_PACKET),
    ("no sender", lambda: _edited(lambda e: setattr(e.packet, "from", 0)), uplink.BAD_PACKET),
    ("random bytes", lambda: ("msh/2/e/Natalia/" + GATEWAY, os.urandom(120)), uplink.GARBAGE),
    ("a flood-sized payload", lambda: ("msh/2/e/Natalia/" + GATEWAY, b"\x0a" * 5000), uplink.GARBAGE),
    ("an envelope naming another channel than its topic", lambda: _edited(lambda e: setattr(e, "channel_id", "Other")),
     uplink.GARBAGE),
    ("another channel", lambda: (lambda t, p: (t.replace("Natalia", "Other"), p))(
        *_edited(lambda e: setattr(e, "channel_id", "Other"))), uplink.OTHER_CHANNEL),
])
def test_what_someone_writing_to_the_broker_sends_is_refused_with_its_reason(name, message, why):
    topic, payload = message()
    assert opened(topic, payload) == why, name


def test_a_gateway_with_its_encryption_off_uplinks_nothing_of_her_sealed_dm():
    """What a technician must know when setting up the gateway: with `mqtt.encryption_enabled`
    off, the firmware publishes only what it could open itself, and a DM sealed for the station's
    radio is not (MQTT.cpp:740-743). Her sealed cancel then reaches the station only by radio."""
    amina = cast()["amina"]
    amina.knows_station_key = True
    dm = amina.message_to(0x5A7E0001, "SAFE 4321")
    assert envelope(amina, dm, gateway=GATEWAY, to_station=0x5A7E0001, encrypted=False) is None
    topic, _ = envelope(amina, dm, gateway=GATEWAY, to_station=0x5A7E0001)
    assert topic == f"msh/2/e/PKI/{GATEWAY}"


def test_only_what_the_station_opened_with_the_office_key_speaks_for_the_office_channel():
    """A gateway that decodes for us (its encryption_enabled off) hands over a packet anyone able
    to write to the broker could have made: taken, but as off the office channel."""
    sealed = opened(*_amina_sos())
    clear = opened(*_amina_sos(encrypted=False))
    assert isinstance(sealed, uplink.Opened) and sealed.office is True
    assert isinstance(clear, uplink.Opened) and clear.office is False
    assert sealed.packet.decoded.payload == clear.packet.decoded.payload == b"SOS"


# -- a station hearing the office's gateway --------------------------------------------------------
@pytest.fixture
def broker(tmp_path):
    if not shutil.which("mosquitto") and not os.environ.get("CI"):
        pytest.skip("mosquitto is not installed (sudo apt-get install mosquitto)")
    # As `station hub broker-config --station station --gateway gateway` writes it: only the
    # gateway's account writes the uplink; the station reads it.
    mq = Mosquitto(tmp_path / "broker", {"gateway": "gateway-secret", "station": "station-secret"},
                   gateways=("gateway",)).start()
    gw = Gateway("localhost", mq.port, "gateway", "gateway-secret", str(mq.ca))
    mq.gateway = gw
    yield mq
    gw.close()
    mq.stop()


def uplink_section(tmp_path, mq) -> dict:
    key = tmp_path / "office.key"
    key.write_text(base64.b64encode(OFFICE_CHANNEL.psk).decode() + "\n")
    key.chmod(0o600)
    return {"enabled": True, "broker": mq.url, "username": "station", "password_file": mq.password_file("station"),
            "ca_file": str(mq.ca), "channel": "Natalia", "channel_key_file": str(key), "gateways": [GATEWAY]}


def test_a_station_with_no_radio_hears_her_sos_through_the_gateway_and_opens_a_real_alert(tmp_path, broker):
    """No radio plugged in: the station does not start the virtual radio (whose alerts are
    drills) and hears the mesh through the uplink; her SOS opens a real, verified alert, and
    garbage on the broker is counted without stopping anything."""
    cfg = make_config(tmp_path, uplink=uplink_section(tmp_path, broker)).with_overrides(radio={"port": "auto"})
    register_cast(cfg.database_path, cast())
    station = Station(cfg)
    station.auto_candidates, station.auto_globs = [], []      # nothing on USB
    station.start()
    try:
        assert station.sim is None
        wait_until(lambda: station.uplink.listening, 15, what="the station on the broker")
        assert station._listening()
        broker.gateway.publish("msh/2/e/Natalia/" + GATEWAY, os.urandom(64))
        broker.gateway.publish(*_amina_sos(snr=4.5, hops_away=1))
        db = station._reader

        def alert():
            return db.execute("SELECT trust, drill, state FROM incidents WHERE node_num=?", (AMINA,)).fetchone()
        assert wait_until(alert, 15, what="her alert") == ("registered", 0, "open")
        assert db.execute("SELECT via_mqtt, snr, hops FROM packets WHERE from_num=?", (AMINA,)).fetchone() == (1, 4.5, 1)
        wait_until(lambda: station.uplink.dropped.get(uplink.GARBAGE) == 1, 10, what="the garbage counted")
        snap = station.status_snapshot("running")["uplink"]
        assert snap["connected"] and snap["taken"] == 1 and snap["dropped"] == {uplink.GARBAGE: 1}
    finally:
        station.stop()


def test_the_same_packet_by_radio_and_by_uplink_is_one_alert_and_the_health_page_says_so(harness, tmp_path, broker):
    h = harness("idle", uplink=uplink_section(tmp_path, broker))
    wait_until(lambda: h.station.uplink.listening, 15, what="the station on the broker")
    amina = h.sim.stage.amina
    sos = amina.text("SOS")
    h.sim.stage.send(sos, sender=amina)
    broker.gateway.publish(*envelope(amina, sos, gateway=GATEWAY))
    wait_until(lambda: h.count("SELECT COALESCE(MAX(duplicates), 0) FROM packets WHERE from_num=?", (AMINA,)) == 1, 15,
               what="the second copy counted as a duplicate")
    assert h.count("SELECT COUNT(*) FROM incidents WHERE node_num=?", (AMINA,)) == 1
    wait_until(lambda: h.station.uplink.taken == 1, 10, what="the uplink's copy taken")
    h.station._write_status("running")
    from tests.test_network import console
    page = console(h, "coordinator").get("/health").get_data(as_text=True)
    assert 'id="uplink-health"' in page and f"hearing channel Natalia through {GATEWAY}" in page
    assert "1 packet taken" in page


def test_an_uplink_misconfigured_is_said_in_words_and_the_radio_still_works(harness, tmp_path, broker, caplog):
    bad = tmp_path / "bad.key"
    bad.write_text("not base64!\n")
    bad.chmod(0o600)
    h = harness("idle", uplink={**uplink_section(tmp_path, broker), "channel_key_file": str(bad)})
    assert h.station.uplink is None
    assert "channel key in base64" in caplog.text
    # What the Health page and `station status` show: why it is not connected.
    assert "channel key in base64" in h.station.status_snapshot("running")["uplink"]["error"]
    h.sim.stage.press("amina")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents WHERE node_num=?", (AMINA,)) == 1, 15,
               what="her alert through the radio")


@pytest.mark.parametrize("section, words", [
    ({"enabled": True}, "[uplink] broker: expected a value"),
    ({"gateways": ["0ff1ce01"]}, '"!a1b2c3d4"'),
    ({"channel": "a/b"}, "without / + #"),
    ({"broker": "mqtt://plain:1883"}, "TLS"),
])
def test_uplink_config_mistakes_get_a_clear_error(tmp_path, section, words):
    with pytest.raises(config.ConfigError) as e:
        config.validate({"uplink": section}, None, tmp_path)
    assert words in str(e.value)


def test_a_flood_of_garbage_on_the_broker_is_counted_but_logged_only_now_and_then(harness, tmp_path, broker, caplog):
    """Someone with the gateway's password floods the uplink: every envelope is counted, the
    journal gets the 1st, 10th and 100th, and the station goes on hearing the mesh."""
    h = harness("idle", uplink=uplink_section(tmp_path, broker))
    wait_until(lambda: h.station.uplink.listening, 15, what="the station on the broker")
    for _ in range(150):
        broker.gateway.publish("msh/2/e/Natalia/" + GATEWAY, b"\xff" * 40)
    wait_until(lambda: h.station.uplink.dropped.get(uplink.GARBAGE) == 150, 20, what="the flood counted")
    assert len([r for r in caplog.records if "dropped an envelope" in r.getMessage()]) == 3
    broker.gateway.publish(*_amina_sos())
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents WHERE node_num=?", (AMINA,)) == 1, 15,
               what="her alert after the flood")


def test_a_decoded_envelope_claiming_her_key_cannot_cancel_her_alert(harness, tmp_path, broker):
    """Her public key is public. Someone able to write to the broker sends, as if a gateway had
    decoded it, her cancel DM marked `pki_encrypted` with her key: a radio's word that she sealed
    it. Over MQTT that word is never taken (MQTT.cpp:154 clears it too): her alert stays open."""
    h = harness("idle", uplink=uplink_section(tmp_path, broker))
    wait_until(lambda: h.station.uplink.listening, 15, what="the station on the broker")
    amina = h.sim.stage.amina
    h.sim.stage.press("amina")
    iid = wait_until(lambda: h.count("SELECT COALESCE(MAX(id), 0) FROM incidents WHERE node_num=?", (AMINA,)), 15,
                     what="her alert")
    cancel = amina.message_to(h.sim.radio.node_num, f"SAFE {amina.cancel_pin}")
    topic, payload = envelope(amina, cancel, gateway=GATEWAY, encrypted=False)
    env = mqtt_pb2.ServiceEnvelope.FromString(payload)
    env.packet.pki_encrypted = True
    env.packet.public_key = amina.keys.public
    broker.gateway.publish(topic, env.SerializeToString())
    wait_until(lambda: h.count("SELECT COUNT(*) FROM packets WHERE from_num=? AND packet_id=?", (AMINA, cancel.id)), 15,
               what="the forged cancel stored")
    h.settle()
    assert h.count("SELECT state FROM incidents WHERE id=?", (iid,)) == "open"


def test_a_flood_of_good_looking_packets_is_capped_at_what_a_mesh_can_carry(harness, tmp_path, broker):
    """Someone with the gateway's password and no channel key sends decoded packets, as a gateway
    with its encryption off would, as fast as the broker takes them: past what LoRa can carry
    they are counted and dropped, not written to the station's disk by the thousand. (The
    bucket's clock stands still here, so a slow machine cannot stretch the flood into a trickle.)"""
    h = harness("idle", uplink=uplink_section(tmp_path, broker))
    wait_until(lambda: h.station.uplink.listening, 15, what="the station on the broker")
    u = h.station.uplink
    u.bucket.clock = lambda: 0.0
    visitor = cast()["visitor"]
    visitor.channel = OFFICE_CHANNEL          # the name is all a decoded envelope needs
    sent = uplink.BURST + 300
    for i in range(sent):
        broker.gateway.client.publish(*envelope(visitor, visitor.text(f"hello {i}"), gateway=GATEWAY,
                                                encrypted=False), qos=1)
    wait_until(lambda: u.taken + sum(u.dropped.values()) == sent, 60, what="every envelope seen")
    assert (u.taken, u.dropped[uplink.FLOOD]) == (uplink.BURST, sent - uplink.BURST)
    wait_until(lambda: h.count("SELECT COUNT(*) FROM packets WHERE from_num=?", (visitor.num,)) == uplink.BURST, 30,
               what="the burst stored")


def test_the_uplinks_bucket_refills_at_its_rate_and_never_beyond_its_burst():
    now = [0.0]
    b = uplink.Bucket(10.0, 3, lambda: now[0])
    assert [b.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.1
    assert [b.take(), b.take()] == [True, False]
    now[0] += 3600
    assert sum(b.take() for _ in range(10)) == 3


@pytest.mark.parametrize("psk, own", [
    (b"", False), (b"\x00", False), (b"\x01", False), (b"\x05", False),                  # none, the shorthands
    (base64.b64decode("1PG7OiApB1nwvP+rz05pAQ=="), False),                              # the default, spelled out
    (bytes(range(1, 17)), True), (bytes(range(1, 33)), True),
])
def test_a_key_of_its_own_is_neither_none_nor_the_published_default_however_written(psk, own):
    """Someone who reads the published default key reads the channel, however the radio writes
    the key: the radio's office channel (radio/info.py) and the uplink's both ask channels.own_key."""
    from meshtastic.protobuf import channel_pb2

    from station.radio.info import HandshakeNotes
    assert uplink.Channel("Natalia", psk).private is own
    notes = HandshakeNotes()
    notes.feed(mesh_pb2.FromRadio(channel=channel_pb2.Channel(
        index=0, role=channel_pb2.Channel.Role.PRIMARY, settings=channel_pb2.ChannelSettings(name="Natalia", psk=psk))))
    assert notes.info(0.0).office_channel(0) is own
