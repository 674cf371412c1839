"""Every virtual-radio scenario, through the real meshtastic library over a pty and over TCP,
into a real SQLite file, against every firmware release the virtual radio plays: the stored
incidents, positions, trust flags and receipts, as the wearers and the office must see them."""

from __future__ import annotations

import base64

import pytest

from station.decode import precision
from station.radio.virtual.bracelets import cast, truncate

from .conftest import FIRMWARE, wait_until

P = cast()
AMINA, BASHIR, CHEN = P["amina"].num, P["bashir"].num, P["chen"].num
VISITOR, IMPOSTOR, DARA = P["visitor"].num, P["impostor"].num, P["dara"].num

# Every release over a pty (a USB radio); the newest over TCP as well (a WiFi radio).
RADIOS = [pytest.param(fw, "pty", id=f"{fw}-pty") for fw in FIRMWARE] + \
         [pytest.param("2.7.26", "tcp", id="2.7.26-tcp")]


def incidents(h):
    return h.rows("SELECT * FROM incidents ORDER BY id")


def events(h, iid):
    return [(r["actor"], r["action"]) for r in h.rows("SELECT * FROM events WHERE incident_id=? ORDER BY id", (iid,))]


def receipts_done(h, n):
    return lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state IN ('delivered','failed','expired')") >= n


def received_by(h, name):
    """What the wearer's bracelet actually got and could read."""
    return h.sim.stage.people[name].texts_received()


def cell_center(lat, lon, bits):
    return truncate(round(lat * 1e7), bits) / 1e7, truncate(round(lon * 1e7), bits) / 1e7


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_join_stores_nodes_positions_and_telemetry_without_alerts(harness, firmware, transport):
    h = harness("join", transport, firmware=firmware)
    h.settle()
    names = {r["num"]: r["long_name"] for r in h.rows("SELECT num, long_name FROM nodes")}
    assert names == {AMINA: "Amina D.", BASHIR: "Bashir K.", CHEN: "Chen L."}
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num IN (?,?)", (AMINA, BASHIR)) == 2
    assert h.rows("SELECT battery_level FROM nodes WHERE num=?", (AMINA,))[0][0] == 87
    assert h.count("SELECT COUNT(*) FROM incidents") == 0


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_a_press_on_the_detection_sensor_opens_one_trusted_incident_and_the_wearer_gets_the_receipt(
        harness, firmware, transport):
    h = harness("sos", transport, firmware=firmware)
    h.settle()
    [inc] = incidents(h)
    assert (inc["node_num"], inc["state"], inc["trust"], inc["source"]) == \
        (AMINA, "open", "registered", "detection_sensor")
    assert inc["message"] == "SOS detected\x07"
    assert (round(inc["lat"], 5), round(inc["lon"], 5)) == (14.6937, -17.4441)
    assert inc["drill"] == 0
    wait_until(receipts_done(h, 1), what="receipt delivery")
    [rc] = h.rows("SELECT * FROM receipts")
    assert (rc["node_num"], rc["kind"], rc["state"], rc["answered_by"]) == (AMINA, "opened", "delivered", "bracelet")
    assert received_by(h, "amina") == ["Alert received by the base station"]


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_alert_without_fix_carries_the_last_known_position_at_its_precision(harness, firmware, transport):
    h = harness("sos-no-fix", transport, firmware=firmware)
    h.settle()
    by_node = {r["node_num"]: r for r in incidents(h)}
    bashir = by_node[BASHIR]
    assert (bashir["source"], bashir["message"]) == ("bell", "SOS\x07")     # the T-Echo's canned message
    # Bashir's channel sends 16-bit positions: the centre of a cell, never shown as exact.
    assert (bashir["lat"], bashir["lon"]) == pytest.approx(cell_center(14.71520, -17.47310, 16), abs=1e-7)
    assert bashir["fix_precision_bits"] == 16
    assert abs(bashir["lat"] - 14.71520) <= precision.cell_deg(16) / 2
    assert bashir["fix_at"] <= bashir["opened_at"]
    chen = by_node[CHEN]
    assert chen["lat"] is None and chen["fix_at"] is None   # never had a fix: still an alert
    assert h.count("SELECT COUNT(*) FROM packets WHERE decode LIKE '%position without fix%'") == 1


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_every_way_an_alert_really_arrives_is_recognised(harness, firmware, transport):
    h = harness("triggers", transport, firmware=firmware)
    h.settle()
    got = {r["node_num"]: (r["source"], r["trust"]) for r in incidents(h)}
    assert got == {
        AMINA: ("detection_sensor", "registered"),
        BASHIR: ("bell", "registered"),
        CHEN: ("alert_app", "registered"),
        VISITOR: ("keyword", "unregistered"),       # heard on the public channel, decoded
    }


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_moving_wearer_keeps_the_incident_position_current(harness, firmware, transport):
    h = harness("moving", transport, firmware=firmware)
    h.settle()
    [inc] = incidents(h)
    track = h.rows("SELECT lat, lon FROM positions WHERE node_num=? ORDER BY id", (AMINA,))
    assert len(track) == 6
    assert (inc["lat"], inc["lon"]) == (track[-1]["lat"], track[-1]["lon"])


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_cancel_with_the_right_pin_resolves_safe_and_both_receipts_reach_the_bracelet(harness, firmware, transport):
    h = harness("cancel", transport, firmware=firmware)
    h.settle()
    [inc] = incidents(h)
    assert (inc["state"], inc["resolution"], inc["resolved_by"]) == ("resolved", "safe", "wearer")
    assert events(h, inc["id"]) == [("wearer", "alert opened"), ("wearer", "resolved")]
    wait_until(receipts_done(h, 2), what="two receipts")
    # Each delivered at its first attempt: no retry had to mend a dropped text.
    assert [tuple(r) for r in h.rows("SELECT state, attempts FROM receipts ORDER BY id")] == \
        [("delivered", 1), ("delivered", 1)]
    # The radio drops a second text within 2 s while saying it queued it: the station spaces them.
    assert received_by(h, "amina") == ["Alert received by the base station", "Cancel received"]


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_cancel_with_a_wrong_pin_keeps_the_alert_open(harness, firmware, transport):
    h = harness("wrong-pin", transport, firmware=firmware)
    h.settle()
    wait_until(lambda: h.count("SELECT COUNT(*) FROM events WHERE action='cancel rejected'") == 1, what="the cancel")
    [inc] = incidents(h)
    assert inc["state"] == "open"
    assert ("wearer", "cancel rejected") in events(h, inc["id"])


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_duress_pin_looks_like_a_cancel_to_the_wearer_but_escalates(harness, firmware, transport):
    h = harness("duress", transport, firmware=firmware)
    h.settle()
    [inc] = incidents(h)
    assert (inc["state"], inc["duress"]) == ("open", 1)
    assert ("wearer", "DURESS") in events(h, inc["id"])
    wait_until(receipts_done(h, 2), what="two receipts")
    # Exactly what a real cancel gets back: nothing tells whoever holds the bracelet.
    assert received_by(h, "amina") == ["Alert received by the base station", "Cancel received"]


def test_pins_are_stored_hashed(harness):
    h = harness("idle", "pty")
    rows = h.rows("SELECT cancel_pin_hash, duress_pin_hash FROM bracelets")
    assert rows and all(r[0].startswith("scrypt-k1$") and r[1].startswith("scrypt-k1$") for r in rows)
    dump = "\n".join(h.db().iterdump())
    for b in (P["amina"], P["bashir"], P["chen"]):
        assert f"'{b.cancel_pin}'" not in dump and f"'{b.duress_pin}'" not in dump


def test_a_stolen_backup_alone_does_not_tell_the_cancel_pin_from_the_duress_pin(harness, tmp_path):
    """Someone who copies the database (or a backup) but not pin.key tries the wearer's two real
    PINs against both hashes as scrypt alone: neither matches, so trying all PINs tells nothing.
    With the station's key the same hashes check."""
    import base64
    import hashlib
    import hmac

    from station.pins import KEY_FILE, PinKey
    from station.storage.backup import backup
    h = harness("idle", "pty")
    copy = backup(h.cfg.database_path, tmp_path / "stick", keep=1, encrypt_to=[])
    assert not list((tmp_path / "stick").glob(KEY_FILE))
    import sqlite3
    with sqlite3.connect(copy) as c:
        cancel_hash, duress_hash = c.execute("SELECT cancel_pin_hash, duress_pin_hash FROM bracelets "
                                             "WHERE node_num=?", (AMINA,)).fetchone()
    amina = P["amina"]
    for stored in (cancel_hash, duress_hash):
        _, _, n, r, p, salt, digest = stored.split("$")
        for pin in (amina.cancel_pin, amina.duress_pin):
            guess = hashlib.scrypt(pin.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
            assert not hmac.compare_digest(guess, base64.b64decode(digest))
        assert not PinKey(bytes(32)).verify(amina.cancel_pin, stored)       # a guessed key
    key = PinKey.load(h.cfg.database_path.with_name(KEY_FILE), create=False)
    assert key.verify(amina.cancel_pin, cancel_hash) and key.verify(amina.duress_pin, duress_hash)
    assert not key.verify(amina.duress_pin, cancel_hash)


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_battery_drop_is_recorded_and_external_power_is_not_a_percentage(harness, firmware, transport):
    h = harness("battery", transport, firmware=firmware)
    h.settle()
    levels = [r[0] for r in h.rows("SELECT battery_level FROM telemetry WHERE node_num=? ORDER BY id", (BASHIR,))]
    assert levels == [64, 80, 70, 60, 50, 40, 30, 20, 10]
    assert h.rows("SELECT battery_level FROM nodes WHERE num=?", (BASHIR,))[0][0] == 10
    # Chen's bracelet is on a charger: the firmware says 101, the station says "external power".
    assert [tuple(r) for r in h.rows("SELECT battery_level, external_power FROM telemetry WHERE node_num=?",
                                     (CHEN,))] == [(None, 1)]
    assert tuple(h.rows("SELECT battery_level, external_power FROM nodes WHERE num=?", (CHEN,))[0]) == (None, 1)


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_rebroadcast_duplicates_are_stored_once_and_counted(harness, firmware, transport):
    h = harness("duplicates", transport, firmware=firmware)
    h.settle()
    assert h.count("SELECT COUNT(*) FROM incidents") == 1
    alert = h.rows("SELECT duplicates FROM packets WHERE from_num=? AND port='DETECTION_SENSOR_APP'", (AMINA,))
    assert [r[0] for r in alert] == [2]
    pos = h.rows("SELECT duplicates FROM packets WHERE from_num=? AND port='POSITION_APP' ORDER BY id", (AMINA,))
    assert [r[0] for r in pos] == [0, 1]
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (AMINA,)) == 2


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_burst_of_presses_folds_into_one_incident(harness, firmware, transport):
    h = harness("burst", transport, firmware=firmware)
    h.settle()
    [inc] = incidents(h)
    assert inc["press_count"] == 10
    assert events(h, inc["id"]).count(("wearer", "pressed again")) == 9
    wait_until(lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state='delivered'") == 1, what="receipt")
    assert h.count("SELECT COUNT(*) FROM receipts") == 1     # one receipt for the incident, not ten


def test_presses_outside_the_fold_window_open_a_new_incident(harness):
    h = harness("burst", "pty", alerts={"fold_window_s": 0.000001})
    h.settle()
    assert h.count("SELECT COUNT(*) FROM incidents") == 10


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_only_a_press_is_an_alert_never_the_sensor_reporting_its_state(harness, firmware, transport):
    h = harness("sensor", transport, firmware=firmware)
    h.settle()
    # Three presses within the sensor's 45 s minimum: the firmware sends one message.
    [inc] = incidents(h)
    assert (inc["node_num"], inc["press_count"]) == (AMINA, 1)
    # The release ("state: 0") and the hourly state report reach the station and open nothing.
    states = h.rows("SELECT decode FROM packets WHERE from_num=? AND port='DETECTION_SENSOR_APP' ORDER BY id",
                    (AMINA,))
    assert [r[0] for r in states] == ["ok", "sensor state 0: not a press", "sensor state 0: not a press"]
    assert events(h, inc["id"]) == [("wearer", "alert opened")]


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_a_bracelet_on_the_public_channel_cannot_raise_a_detection_sensor_alert(harness, firmware, transport):
    h = harness("public-channel", transport, firmware=firmware)
    h.settle()
    assert h.count("SELECT COUNT(*) FROM packets WHERE port='DETECTION_SENSOR_APP'") == 0
    assert h.count("SELECT COUNT(*) FROM incidents") == 0
    assert h.sim.stage.amina.log.count("Message not allow on Public channel") == 2


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_a_stock_t1000e_button_never_raises_an_alert(harness, firmware, transport):
    h = harness("t1000e", transport, firmware=firmware)
    h.settle()
    assert h.count("SELECT COUNT(*) FROM incidents") == 0
    # The double press is a position broadcast, stored as such.
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (DARA,)) == 1
    assert "button: single press gives buzzer feedback only" in h.sim.stage.dara.log


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_two_wearers_pressing_within_a_second_both_get_their_receipt(harness, firmware, transport):
    h = harness("two-presses", transport, firmware=firmware)
    h.settle()
    assert {r["node_num"] for r in incidents(h)} == {AMINA, BASHIR}
    wait_until(receipts_done(h, 2), what="two receipts")
    assert [tuple(r) for r in h.rows("SELECT node_num, state, attempts FROM receipts ORDER BY id")] == \
        [(AMINA, "delivered", 1), (BASHIR, "delivered", 1)]
    assert received_by(h, "amina") == ["Alert received by the base station"]
    assert received_by(h, "bashir") == ["Alert received by the base station"]


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_unregistered_sender_is_shown_as_unverified_at_the_public_channels_precision(harness, firmware, transport):
    h = harness("unregistered", transport, firmware=firmware)
    h.settle()
    [inc] = incidents(h)
    assert (inc["node_num"], inc["trust"]) == (VISITOR, "unregistered")
    [(bits,)] = h.rows("SELECT precision_bits FROM positions WHERE node_num=?", (VISITOR,))
    assert bits == 13 and precision.describe(bits) == "±2.9 km"


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_impostors_are_flagged_by_name_and_claims_on_a_registered_number_prove_nothing(harness, firmware, transport):
    h = harness("impostor", transport, firmware=firmware)
    h.settle()
    got = {r["node_num"]: r["trust"] for r in incidents(h)}
    assert got == {IMPOSTOR: "impostor", BASHIR: "unverified"}
    # Bashir's pinned key is untouched by the node info that announced another one.
    assert h.rows("SELECT public_key FROM bracelets WHERE node_num=?", (BASHIR,))[0][0] == \
        base64.b64encode(P["bashir"].public_key).decode()
    assert h.count("SELECT spoofed FROM nodes WHERE num=?", (BASHIR,)) >= 2
    actions = [r[0] for r in h.rows("SELECT action FROM events WHERE incident_id IS NULL")]
    assert "impostor suspected" in actions and "public key changed" not in actions
    # No receipt tells an impostor that its alert was taken seriously, nor reaches the real Bashir.
    assert h.count("SELECT COUNT(*) FROM receipts") == 0


def test_a_bracelet_is_never_registered_without_its_key_nor_pinned_from_the_air(tmp_path):
    """Trust on first hearing would pin whichever node spoke first under the number."""
    import time

    from station import registry
    from station.storage.writer import Writer
    w = Writer(tmp_path / "s.db").start()
    try:
        with pytest.raises(registry.RegistryError, match="registered with its public key"):
            w.call(lambda db: registry.add(db, AMINA, "Amina D.", time.time()))
        assert w.db.execute("SELECT COUNT(*) FROM bracelets").fetchone()[0] == 0
    finally:
        w.stop()


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_nmea_in_text_and_serial_payloads_gives_positions_and_bad_checksums_are_counted(harness, firmware, transport):
    h = harness("nmea", transport, firmware=firmware)
    h.settle()
    [inc] = incidents(h)
    assert (inc["node_num"], inc["source"], inc["fix_source"]) == (CHEN, "keyword", "nmea")
    assert (round(inc["lat"], 4), round(inc["lon"], 4)) == (14.7001, -17.4502)
    serial_fix = h.rows("SELECT lat, lon, sats FROM positions WHERE node_num=? AND source='nmea'", (BASHIR,))
    assert [(round(r[0], 4), round(r[1], 4), r[2]) for r in serial_fix] == [(14.7201, -17.4811, 8)]
    assert h.count("SELECT COUNT(*) FROM rejects WHERE reason='nmea bad checksum'") == 1


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_garbage_between_frames_is_counted_and_does_not_lose_packets(harness, firmware, transport):
    h = harness("garbage", transport, firmware=firmware)
    h.settle()
    assert h.count("SELECT COUNT(*) FROM incidents") == 1
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (AMINA,)) == 11
    assert h.station.ingest.counters.log_lines > 0


@pytest.mark.parametrize("firmware, transport", RADIOS)
def test_corrupt_and_oversized_frames_are_counted_and_the_link_resyncs(harness, firmware, transport):
    h = harness("corrupt", transport, firmware=firmware)
    h.settle()
    assert h.count("SELECT COUNT(*) FROM rejects WHERE source='radio' AND reason='corrupt frame'") == 2
    # The truncated Position payload: the library cannot decode it, the raw packet is kept.
    bad = h.rows("SELECT decode FROM packets WHERE from_num=? AND port='POSITION_APP' AND decode != 'ok'", (AMINA,))
    assert len(bad) == 1 and "DecodeError" in bad[0][0]
    assert h.count("SELECT COUNT(*) FROM incidents WHERE node_num=?", (AMINA,)) == 1
    assert h.station.link.state.status == "connected"
