"""Receipts as real firmware treats them: the wearer must learn that her alert arrived, and the
office must see a receipt end `delivered` or `failed` with a reason it can act on, never "sent"
forever. Each test puts the virtual radio in a state real radios reach (firmware file and line
in station/radio/virtual/) and checks what the station does about it."""

from __future__ import annotations

import pytest

from station import receipts
from station.radio.virtual.bracelets import cast

from .conftest import wait_until

P = cast()
AMINA, BASHIR = P["amina"].num, P["bashir"].num


def receipt_rows(h):
    return [dict(r) for r in h.rows("SELECT * FROM receipts ORDER BY id")]


def settled(h, n=1):
    return lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state IN ('delivered','failed','expired')") >= n


def keys_synced(h):
    """The station has given its radio every registered bracelet (favourites) after connecting."""
    radio = h.sim.radio
    return lambda: all(radio.nodedb.get(n) is not None and radio.nodedb.get(n).is_favorite
                       for n in (AMINA, BASHIR, P["chen"].num))


def own_node_routing(h):
    own = h.station.link.state.node_num
    return h.rows("SELECT raw FROM packets WHERE from_num=? AND port='ROUTING_APP'", (own,))


@pytest.mark.slow
def test_a_bracelet_out_of_reach_ends_failed_with_the_radios_reason_after_bounded_retries(harness):
    h = harness("sos", "pty")
    h.sim.radio.unreachable.add(AMINA)
    h.settle()
    wait_until(settled(h), 20, what="the receipt to end")
    [r] = receipt_rows(h)
    assert (r["state"], r["attempts"]) == ("failed", 3)
    # MAX_RETRANSMIT comes from the station's own radio (Router.cpp abortSendAndNak), not the bracelet.
    assert r["reason"] == "MAX_RETRANSMIT: reported by the station's radio (gave up after 3 attempts)"
    assert receipts.plain(r["reason"]).startswith("the bracelet did not answer")
    assert len(own_node_routing(h)) == 3


def test_an_implicit_ack_is_only_a_relay_the_receipt_waits_for_the_bracelet(harness):
    h = harness("two-presses", "pty")     # Bashir is two hops away: a relay repeats the receipt
    h.settle()
    wait_until(settled(h, 2), what="both receipts")
    bashir = [r for r in receipt_rows(h) if r["node_num"] == BASHIR][0]
    assert (bashir["state"], bashir["answered_by"], bashir["attempts"]) == ("delivered", "bracelet", 1)
    # The radio reported the relay's rebroadcast first (ReliableRouter.cpp:42-62), from itself.
    assert len(own_node_routing(h)) >= 1


@pytest.mark.slow
def test_a_receipt_only_relayed_and_never_acknowledged_fails_instead_of_staying_sent(harness):
    # A 2.7.3 radio that lost Amina's key sends a channel-encrypted DM; her 2.7.26 bracelet drops
    # it without an answer (Router.cpp:500); the relay's rebroadcast still gives an implicit ACK.
    h = harness("idle", "pty", firmware="2.7.3", receipts={"ack_timeout_s": 1.0})
    wait_until(keys_synced(h), what="keys given to the radio")
    h.sim.radio.nodedb.remove(AMINA)
    h.sim.stage.press("amina")
    wait_until(settled(h), 20, what="the receipt to end")
    [r] = receipt_rows(h)
    assert (r["state"], r["attempts"]) == ("failed", 3)
    assert r["reason"].startswith("no answer: relayed by the mesh, but the bracelet did not acknowledge")
    assert "Rejecting legacy DM" in h.sim.stage.amina.log
    assert h.sim.stage.amina.texts_received() == []


@pytest.mark.slow          # seconds of real timing; the quick loop leaves it to the full run
def test_a_radio_that_lost_the_bracelets_key_is_given_it_and_the_receipt_goes_through(harness):
    # Firmware 2.7.19+ refuses a DM without the key (Router.cpp:659-664): PKI_SEND_FAIL_PUBLIC_KEY.
    h = harness("idle", "pty", firmware="2.7.26")
    wait_until(keys_synced(h), what="keys given to the radio")
    h.sim.radio.nodedb.remove(AMINA)          # evicted, or the radio was reset
    h.sim.stage.press("amina")
    wait_until(settled(h), 20, what="the receipt to end")
    [r] = receipt_rows(h)
    assert (r["state"], r["attempts"]) == ("delivered", 2)
    entry = h.sim.radio.nodedb.get(AMINA)
    assert entry.public_key == h.sim.stage.amina.public_key and entry.is_favorite
    assert h.sim.stage.amina.texts_received() == ["Alert received by the base station"]


@pytest.mark.parametrize("firmware, state, attempts", [
    ("2.7.26", "delivered", 2),     # the radio can announce itself on demand (heartbeat nonce 1, 2.7.23+)
    ("2.7.3", "failed", 3),         # it cannot: the bracelet learns the key only at the next NodeInfo
])
def test_a_bracelet_that_lacks_the_stations_key_is_told_it_where_the_firmware_allows(harness, firmware, state,
                                                                                        attempts):
    h = harness("idle", "pty", firmware=firmware)
    h.sim.stage.amina.knows_station_key = False
    h.sim.stage.press("amina")
    wait_until(settled(h), 20, what="the receipt to end")
    [r] = receipt_rows(h)
    assert (r["state"], r["attempts"]) == (state, attempts)
    if state == "failed":
        assert r["reason"].startswith("PKI_UNKNOWN_PUBKEY: answered by the bracelet")
        assert receipts.plain(r["reason"]) == "the bracelet does not have the station's key"


def test_a_radio_out_of_air_time_holds_the_receipt_for_the_duty_cycle_hour(harness):
    h = harness("idle", "pty")
    h.sim.radio.router.duty_cycle_used_s = 400        # EU_868: 10 % of 3600 s
    h.sim.stage.press("amina")
    wait_until(lambda: (receipt_rows(h) or [{}])[0].get("reason"), what="the refusal")
    [r] = receipt_rows(h)
    assert r["state"] == "queued" and r["reason"].startswith("DUTY_CYCLE_LIMIT")
    assert r["next_attempt_at"] - r["updated_at"] >= receipts.AIR_WAIT_S
    assert receipts.plain(r["reason"]) == "the radio used its hourly air time (duty cycle)"


@pytest.mark.parametrize("firmware, second_attempts", [
    ("2.6.11", 1),     # no limit in the firmware: both leave at once
    ("2.7.3", 2),      # dropped; a ClientNotification says so: retried
    ("2.7.26", 2),     # dropped silently, reported queued: retried after the ack timeout
])
def test_without_spacing_the_radio_drops_the_second_text_and_only_retries_save_it(
        harness, monkeypatch, firmware, second_attempts):
    monkeypatch.setattr(receipts, "TEXT_SPACING_S", 0.0)
    h = harness("two-presses", "pty", firmware=firmware, receipts={"ack_timeout_s": 1.5})
    h.settle()
    wait_until(settled(h, 2), 20, what="both receipts")
    assert [(r["state"], r["attempts"]) for r in receipt_rows(h)] == \
        [("delivered", 1), ("delivered", second_attempts)]
    assert [hp.fate for hp in h.sim.radio.host_packets if hp.packet.decoded.portnum == 1].count("rate limited") == \
        second_attempts - 1
