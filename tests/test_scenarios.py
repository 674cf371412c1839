"""Every virtual-radio scenario, through the real meshtastic library over a pty and over TCP,
into a real SQLite file: the stored incidents, positions, trust flags and receipts."""

from __future__ import annotations

import pytest

from station.radio.virtual.bracelets import cast

from .conftest import wait_until

P = cast()
AMINA, BASHIR, CHEN = P["amina"].num, P["bashir"].num, P["chen"].num
VISITOR, IMPOSTOR = P["visitor"].num, P["impostor"].num

TRANSPORTS = ["pty", "tcp"]


def incidents(h):
    return h.rows("SELECT * FROM incidents ORDER BY id")


def events(h, iid):
    return [(r["actor"], r["action"]) for r in h.rows("SELECT * FROM events WHERE incident_id=? ORDER BY id", (iid,))]


def receipts_settled(h, n):
    return lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state IN ('delivered','failed')") >= n


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_join_stores_nodes_positions_and_telemetry_without_alerts(harness, transport):
    h = harness("join", transport)
    h.settle()
    names = {r["num"]: r["long_name"] for r in h.rows("SELECT num, long_name FROM nodes")}
    assert names == {AMINA: "Amina D.", BASHIR: "Bashir K.", CHEN: "Chen L."}
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num IN (?,?)", (AMINA, BASHIR)) == 2
    assert h.rows("SELECT battery_level FROM nodes WHERE num=?", (AMINA,))[0][0] == 87
    assert h.count("SELECT COUNT(*) FROM incidents") == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sos_opens_one_trusted_incident_with_position_and_a_delivered_receipt(harness, transport):
    h = harness("sos", transport)
    h.settle()
    [inc] = incidents(h)
    assert (inc["node_num"], inc["state"], inc["trust"], inc["source"]) == (AMINA, "open", "registered", "alert_app")
    assert (round(inc["lat"], 5), round(inc["lon"], 5)) == (14.6937, -17.4441)
    assert inc["drill"] == 0
    wait_until(receipts_settled(h, 1), what="receipt delivery")
    [rc] = h.rows("SELECT * FROM receipts")
    assert (rc["node_num"], rc["kind"], rc["state"]) == (AMINA, "opened", "delivered")
    assert h.sim.radio.texts_to(AMINA) == ["Alert received by the base station"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_alert_without_fix_carries_the_last_known_position_and_its_age(harness, transport):
    h = harness("sos-no-fix", transport)
    h.settle()
    by_node = {r["node_num"]: r for r in incidents(h)}
    bashir = by_node[BASHIR]
    assert bashir["source"] == "keyword"
    assert (round(bashir["lat"], 4), round(bashir["lon"], 4)) == (14.7152, -17.4731)
    assert bashir["fix_at"] <= bashir["opened_at"]
    chen = by_node[CHEN]
    assert chen["lat"] is None and chen["fix_at"] is None   # never had a fix: still an alert
    assert h.count("SELECT COUNT(*) FROM packets WHERE decode LIKE '%position without fix%'") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_all_four_alert_triggers_are_recognised(harness, transport):
    h = harness("triggers", transport)
    h.settle()
    got = {r["node_num"]: (r["source"], r["trust"]) for r in incidents(h)}
    assert got == {
        AMINA: ("alert_app", "registered"),
        BASHIR: ("detection_sensor", "registered"),
        CHEN: ("bell", "registered"),
        VISITOR: ("keyword", "unregistered"),
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_moving_wearer_keeps_the_incident_position_current(harness, transport):
    h = harness("moving", transport)
    h.settle()
    [inc] = incidents(h)
    track = h.rows("SELECT lat, lon FROM positions WHERE node_num=? ORDER BY id", (AMINA,))
    assert len(track) == 6
    assert (inc["lat"], inc["lon"]) == (track[-1]["lat"], track[-1]["lon"])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_with_the_right_pin_resolves_safe_and_is_receipted(harness, transport):
    h = harness("cancel", transport)
    h.settle()
    [inc] = incidents(h)
    assert (inc["state"], inc["resolution"], inc["resolved_by"]) == ("resolved", "safe", "wearer")
    assert events(h, inc["id"]) == [("wearer", "alert opened"), ("wearer", "resolved")]
    wait_until(receipts_settled(h, 2), what="two receipts")
    assert h.sim.radio.texts_to(AMINA) == ["Alert received by the base station", "Cancel received"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_with_a_wrong_pin_keeps_the_alert_open(harness, transport):
    h = harness("wrong-pin", transport)
    h.settle()
    [inc] = incidents(h)
    assert inc["state"] == "open"
    assert ("wearer", "cancel rejected") in events(h, inc["id"])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_duress_pin_looks_like_a_cancel_to_the_wearer_but_escalates(harness, transport):
    h = harness("duress", transport)
    h.settle()
    [inc] = incidents(h)
    assert (inc["state"], inc["duress"]) == ("open", 1)
    assert ("wearer", "DURESS") in events(h, inc["id"])
    wait_until(receipts_settled(h, 2), what="two receipts")
    # Exactly what a real cancel gets back: nothing tells whoever holds the bracelet.
    assert h.sim.radio.texts_to(AMINA) == ["Alert received by the base station", "Cancel received"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pins_are_stored_hashed(harness, transport):
    h = harness("idle", transport)
    rows = h.rows("SELECT cancel_pin_hash, duress_pin_hash FROM bracelets")
    assert rows and all(r[0].startswith("scrypt$") and r[1].startswith("scrypt$") for r in rows)
    dump = "\n".join(h.db().iterdump())
    for b in (P["amina"], P["bashir"], P["chen"]):
        assert f"'{b.cancel_pin}'" not in dump and f"'{b.duress_pin}'" not in dump


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_battery_drop_is_recorded_as_telemetry(harness, transport):
    h = harness("battery", transport)
    h.settle()
    levels = [r[0] for r in h.rows("SELECT battery_level FROM telemetry WHERE node_num=? ORDER BY id", (BASHIR,))]
    assert levels == [64, 80, 70, 60, 50, 40, 30, 20, 10]
    assert h.rows("SELECT battery_level FROM nodes WHERE num=?", (BASHIR,))[0][0] == 10


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rebroadcast_duplicates_are_stored_once_and_counted(harness, transport):
    h = harness("duplicates", transport)
    h.settle()
    assert h.count("SELECT COUNT(*) FROM incidents") == 1
    alert = h.rows("SELECT duplicates FROM packets WHERE from_num=? AND port='ALERT_APP'", (AMINA,))
    assert [r[0] for r in alert] == [2]
    pos = h.rows("SELECT duplicates FROM packets WHERE from_num=? AND port='POSITION_APP' ORDER BY id", (AMINA,))
    assert [r[0] for r in pos] == [0, 1]
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (AMINA,)) == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_burst_of_presses_folds_into_one_incident(harness, transport):
    h = harness("burst", transport)
    h.settle()
    [inc] = incidents(h)
    assert inc["press_count"] == 10
    assert events(h, inc["id"]).count(("wearer", "pressed again")) == 9
    wait_until(lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state='delivered'") == 1, what="receipt")
    assert h.count("SELECT COUNT(*) FROM receipts") == 1     # one receipt for the incident, not ten


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_presses_outside_the_fold_window_open_a_new_incident(harness, transport):
    h = harness("burst", transport, alerts={"fold_window_s": 0.000001})
    h.settle()
    assert h.count("SELECT COUNT(*) FROM incidents") == 10


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unregistered_sender_is_shown_as_unverified(harness, transport):
    h = harness("unregistered", transport)
    h.settle()
    [inc] = incidents(h)
    assert (inc["node_num"], inc["trust"]) == (VISITOR, "unregistered")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_impostors_are_flagged_by_name_and_by_key(harness, transport):
    h = harness("impostor", transport)
    h.settle()
    got = {r["node_num"]: r["trust"] for r in incidents(h)}
    assert got == {IMPOSTOR: "impostor", BASHIR: "impostor"}
    assert h.count("SELECT key_mismatch FROM nodes WHERE num=?", (BASHIR,)) == 1
    actions = [r[0] for r in h.rows("SELECT action FROM events WHERE incident_id IS NULL")]
    assert "public key changed" in actions and "impostor suspected" in actions
    # No receipt tells an impostor that its alert was taken seriously.
    assert h.count("SELECT COUNT(*) FROM receipts") == 0


def test_key_is_pinned_when_a_registered_bracelet_is_first_heard(harness):
    from .conftest import register_cast

    h = harness("join", "pty", register=False, start=False)
    register_cast(h.cfg.database_path, h.sim.stage.people, with_keys=False)
    h.start()
    h.settle()
    keys = dict(h.rows("SELECT node_num, public_key FROM bracelets"))
    assert all(keys[n] for n in (AMINA, BASHIR, CHEN))
    assert h.count("SELECT COUNT(*) FROM events WHERE action='key pinned'") == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nmea_in_text_and_serial_payloads_gives_positions_and_bad_checksums_are_counted(harness, transport):
    h = harness("nmea", transport)
    h.settle()
    [inc] = incidents(h)
    assert (inc["node_num"], inc["source"], inc["fix_source"]) == (CHEN, "keyword", "nmea")
    assert (round(inc["lat"], 4), round(inc["lon"], 4)) == (14.7001, -17.4502)
    serial_fix = h.rows("SELECT lat, lon, sats FROM positions WHERE node_num=? AND source='nmea'", (BASHIR,))
    assert [(round(r[0], 4), round(r[1], 4), r[2]) for r in serial_fix] == [(14.7201, -17.4811, 8)]
    assert h.count("SELECT COUNT(*) FROM rejects WHERE reason='nmea bad checksum'") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_garbage_between_frames_is_counted_and_does_not_lose_packets(harness, transport):
    h = harness("garbage", transport)
    h.settle()
    assert h.count("SELECT COUNT(*) FROM incidents") == 1
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (AMINA,)) == 11
    assert h.station.ingest.counters.log_lines > 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_corrupt_and_oversized_frames_are_counted_and_the_link_resyncs(harness, transport):
    h = harness("corrupt", transport)
    h.settle()
    assert h.count("SELECT COUNT(*) FROM rejects WHERE source='radio' AND reason='corrupt frame'") == 2
    # The truncated Position payload: the library cannot decode it, the raw packet is kept.
    bad = h.rows("SELECT decode FROM packets WHERE from_num=? AND port='POSITION_APP' AND decode != 'ok'", (AMINA,))
    assert len(bad) == 1 and "DecodeError" in bad[0][0]
    assert h.count("SELECT COUNT(*) FROM incidents WHERE node_num=?", (AMINA,)) == 1
    assert h.station.link.state.status == "connected"
