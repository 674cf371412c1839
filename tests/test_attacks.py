"""Someone on the LoRa channel who knows its key (the default key is published) against the
station: the daemon over TCP on the virtual radio, with the fake platforms, and an attacker node
that borrows a registered wearer's number, replays, forges and floods. Each test is one attack
from issue 11, and asserts what the wearer and the coordinators get: nothing the attacker wanted.
"""

from __future__ import annotations

import base64
import random
import re
import time

import pytest

from station import registry
from station.radio.virtual.bracelets import Bracelet, cast, public_channel
from station.storage.writer import Writer

from .conftest import wait_until
from .fakes.social import FakeWebhook, FakeX
from .relay.conftest import secret_files

P = cast()
AMINA = P["amina"].num
BROADCAST = 0xFFFFFFFF


def attacker(num: int = AMINA, *, name: str = "Amina D.", short: str = "AMI", key: bytes | None = None,
             seed: str = "attacker", on_public_channel: bool = True, lat: float = 14.9, lon: float = -17.2) -> Bracelet:
    """A node of the attacker's: her number and name, its own key pair, on the public channel."""
    b = Bracelet(num=num, long_name=name, short_name=short, device="heltec-v3", lat=lat, lon=lon,
                 rng=random.Random(f"{seed}:{num}:{name}"), knows_station_key=False, key_seed=seed,
                 public_key=key or b"",
                 **({"channel": public_channel()} if on_public_channel else {}))
    if key is None:
        b.public_key = b.keys.public          # it announces its own key
    return b


@pytest.fixture
def office(harness, tmp_path):
    """The station on TCP with X and a partners' webhook; Amina consents to immediate publication
    under a pseudonym, with position updates."""
    def make(scenario: str = "idle", **kw):
        x, hook = FakeX().up(), FakeWebhook(secret="value-of-secret_file").up()
        files = secret_files(tmp_path)
        h = harness(scenario, "tcp", start=False, **kw)
        h.cfg = h.cfg.with_overrides(
            relay={"probe_interval_s": 0.2, "offline_probe_interval_s": 0.05, "online_after": 1,
                   "offline_after": 1, "backoff_max_s": 0.5, "update_every_min": 0.001},
            destinations=[
                {"name": "x", "kind": "x", "api_base_url": x.url, "timeout_s": 2.0,
                 **{k: files[k] for k in ("consumer_key_file", "consumer_secret_file", "access_token_file",
                                          "access_token_secret_file")}},
                {"name": "partners", "kind": "webhook", "audience": "partners", "url": hook.url + "/hook",
                 "secret_file": files["secret_file"], "timeout_s": 2.0}])
        w = Writer(h.cfg.database_path).start()
        w.call(lambda db: registry.set_consent(db, AMINA, {
            "publish": "at-once", "name_mode": "pseudonym", "pseudonym": "Defender A", "precision": "exact",
            "position_updates": 1, "real_name": "Amina Diallo"}, "test", time.time()))
        w.stop()
        h.start()
        h.x, h.hook = x, hook
        fakes.extend([x, hook])
        return h
    fakes: list = []
    yield make
    for f in fakes:
        f.down()


def send(h, packet, sender) -> None:
    h.sim.stage.send(packet, sender=sender)


def her_incidents(h, trust: str = "registered"):
    return h.rows("SELECT * FROM incidents WHERE node_num=? AND trust=? ORDER BY id", (AMINA, trust))


def relay_quiet(h, passes: int = 3) -> None:
    """The relay has looked at everything at least `passes` more times: what it has not posted
    by then it was not going to post."""
    worker = h.station.relay.worker
    start = worker.passes
    wait_until(lambda: (h.station.relay.wake(), worker.passes >= start + passes)[1], 15, what="relay passes")


# -- cancels ------------------------------------------------------------------------------------
def test_a_cancel_sent_in_clear_on_a_channel_and_replayed_under_her_number_closes_nothing(harness):
    """The old guide put `SAFE <PIN>` in a canned message: anyone with the channel key read it and
    replayed it under a new packet id. Now a cancel counts only sealed with her key."""
    h = harness("sos", "tcp")
    h.settle()
    amina = h.sim.stage.amina
    public, office = attacker(), attacker(seed="holds the office key", on_public_channel=False)
    send(h, public.text(f"SAFE {amina.cancel_pin}"), public)                 # in clear on the public channel
    send(h, office.text(f"SAFE {amina.cancel_pin}"), office)                 # with the office channel's key too
    send(h, public.message_to(h.sim.radio.node_num, f"SAFE {amina.cancel_pin}"), public)   # as a DM
    h.settle()
    [inc] = her_incidents(h)
    assert inc["state"] == "open"
    assert h.station.ingest.counters.pin_checks == 0                    # not one PIN was even tried
    assert h.count("SELECT COUNT(*) FROM receipts WHERE kind='cancelled'") == 0
    assert h.count("SELECT COUNT(*) FROM events WHERE action='cancel ignored'") >= 1


def test_guessing_pins_over_the_mesh_tries_none_and_her_own_bracelet_gets_three_tries(harness):
    h = harness("sos", "tcp")
    h.settle()
    station = h.sim.radio.node_num
    guesser = attacker()
    for guess in range(100000, 100042):                                # 42 guesses, as measured
        send(h, guesser.message_to(station, f"SAFE {guess}"), guesser)
    h.settle()
    assert h.station.ingest.counters.pin_checks == 0
    # Someone holding her bracelet (her key) gets three wrong PINs, then a quarter of an hour off,
    # during which even the right PIN does nothing; the office sees the lockout.
    amina = h.sim.stage.amina            # her own bracelet: the station's stage holds it
    for pin in ("111111", "222222", "333333", amina.cancel_pin):
        send(h, amina.message_to(station, f"SAFE {pin}"), amina)
        h.settle()
    assert h.station.ingest.counters.pin_checks == 3
    [inc] = her_incidents(h)
    assert inc["state"] == "open"
    actions = [r[0] for r in h.rows("SELECT action FROM events WHERE incident_id=? ORDER BY id", (inc["id"],))]
    assert actions.count("cancel rejected") == 3 and "PIN entry locked" in actions and "cancel ignored" in actions


def test_after_a_duress_no_cancel_closes_the_alert_only_a_coordinator_with_a_reason(harness, tmp_path):
    from click.testing import CliRunner

    from station.cli import cli
    h = harness("duress", "tcp")
    h.settle()
    [inc] = her_incidents(h)
    assert (inc["duress"], inc["state"]) == (1, "open")
    amina, station = h.sim.stage.amina, h.sim.radio.node_num
    fake = attacker()
    send(h, fake.message_to(station, f"SAFE {amina.cancel_pin}"), fake)                 # a spoofed real PIN
    send(h, amina.message_to(station, f"SAFE {amina.cancel_pin}"), amina)                # her own, forced
    h.settle()
    assert her_incidents(h)[0]["state"] == "open" and h.station.ingest.counters.pin_checks == 1
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[storage]\ndatabase = "{h.cfg.database_path}"\n')
    refused = CliRunner().invoke(cli, ["--config", str(cfg), "alerts", "resolve", str(inc["id"]), "--as", "safe"])
    assert refused.exit_code == 1 and "DURESS: give the reason" in refused.output
    done = CliRunner().invoke(cli, ["--config", str(cfg), "alerts", "resolve", str(inc["id"]), "--as", "safe",
                                    "--reason", "called her, she is at home with the coordinator"])
    assert done.exit_code == 0
    assert h.rows("SELECT detail FROM events WHERE action='resolved'")[0][0].startswith("safe: called her")


# -- duress, as a captor sees it ------------------------------------------------------------------
def _trace(make, pin_of) -> dict:
    """Everything someone outside the office can observe of an alert, its cancel (real PIN or
    duress PIN), a second cancel, a move and a new press: what the bracelet receives, and every
    post on every destination, times of day masked."""
    h = make("sos")
    h.settle()
    wait_until(lambda: len(h.x.posts) == 1 and len(h.hook.posts) == 1, 15, what="the alert posts")
    amina, station = h.sim.stage.amina, h.sim.radio.node_num
    send(h, amina.message_to(station, f"SAFE {pin_of(amina)}"), amina)
    h.settle()
    wait_until(lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state='delivered'") == 2, 15,
               what="both receipts delivered")
    relay_quiet(h)
    send(h, amina.message_to(station, f"SAFE {pin_of(amina)}"), amina)          # the captor tries again
    send(h, amina.position(14.71, -17.43), amina)                               # she is moved
    h.settle()
    relay_quiet(h)
    h.sim.stage.clock += 60                       # past the detection sensor's 45 s
    h.sim.stage.press("amina")                    # and presses again
    h.settle()
    wait_until(lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state='delivered'") == 3, 15,
               what="the new alert's receipt")
    relay_quiet(h)
    def mask(text: str) -> str:
        return re.sub(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}(:\d{2})?", "T", text)
    return {
        "bracelet": amina.texts_received(),
        # What went to the bracelet (the escalation's messages go to responders' own nodes).
        "receipts": [tuple(r) for r in h.rows("SELECT kind, text, state FROM receipts WHERE kind != 'escalation' "
                                              "ORDER BY id")],
        "x": [(mask(p.text), p.reply_to is not None, p.deleted) for p in h.x.posts],
        "partners": [(mask(p.text), p.reply_to is not None, p.deleted) for p in h.hook.posts],
    }


@pytest.mark.slow          # two whole alert lives in real time (receipts leave 2.5 s apart)
def test_a_duress_looks_exactly_like_a_real_cancel_to_the_bracelet_and_on_every_destination(office):
    real = _trace(office, lambda b: b.cancel_pin)
    forced = _trace(office, lambda b: b.duress_pin)
    assert forced == real
    # And what each shows: an alert, "safe" in its thread, then a new alert for the new press;
    # no position update after the cancel; the second cancel answered by silence.
    assert [reply for _, reply, _ in real["x"]] == [False, True, False]
    assert real["bracelet"] == ["Alert received by the base station", "Cancel received",
                                "Alert received by the base station"]


def test_inside_the_office_the_duress_is_open_loud_and_never_posted_as_such(office):
    h = office("duress")
    h.settle()
    [inc] = her_incidents(h)
    assert (inc["duress"], inc["cover"], inc["state"]) == (1, 1, "open")
    wait_until(lambda: len(h.x.posts) == 2, 15, what="the alert and its follow-up")
    assert not any("duress" in p.text.lower() for p in h.hook.posts + h.x.posts)


# -- spoofed alerts and positions --------------------------------------------------------------------
def test_a_spoofed_sos_under_her_number_is_unverified_unanswered_and_unpublished(office):
    h = office("idle")
    fake = attacker(lat=14.90, lon=-17.20)          # where the attacker wants the office to go
    send(h, fake.position(), fake)
    send(h, fake.text("SOS"), fake)
    h.settle()
    [claim] = her_incidents(h, "unverified")
    assert claim["lat"] is None and "not the office's private channel" in claim["trust_reason"]
    assert her_incidents(h) == []
    relay_quiet(h)
    assert h.x.posts == [] and h.hook.posts == []
    assert h.count("SELECT COUNT(*) FROM receipts") == 0 and h.sim.stage.amina.texts_received() == []
    # Her last known position is still hers, not the attacker's.
    assert h.rows("SELECT lat FROM nodes WHERE num=?", (AMINA,))[0][0] != pytest.approx(14.90)


def test_spoofed_positions_never_move_her_verified_alert(office):
    h = office("sos")
    h.settle()
    [inc] = her_incidents(h)
    fake = attacker()
    for lat in (14.80, 14.85, 14.93):                # 27 km away in three steps, as measured
        send(h, fake.position(lat, -17.20), fake)
    h.settle()
    after = her_incidents(h)[0]
    assert (after["lat"], after["lon"]) == (inc["lat"], inc["lon"])
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=? AND unverified=1", (AMINA,)) == 3
    relay_quiet(h)
    assert not any("14.93" in p.text or "14.8" in p.text for p in h.x.posts)


# -- node infos and names -------------------------------------------------------------------------
def test_a_poisoning_node_info_does_not_make_her_next_real_sos_an_impostor(office):
    h = office("idle")
    fake = attacker(key=bytes(range(32)))
    send(h, fake.nodeinfo(), fake)
    h.settle()
    h.sim.stage.press("amina")
    h.settle()
    [inc] = her_incidents(h)
    assert inc["trust"] == "registered"
    wait_until(lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state='delivered'") == 1, 15,
               what="her receipt")
    wait_until(lambda: len(h.x.posts) == 1, 15, what="her alert published")
    assert h.rows("SELECT public_key FROM bracelets WHERE node_num=?", (AMINA,))[0][0] == \
        base64.b64encode(P["amina"].public_key).decode()
    assert h.count("SELECT spoofed FROM nodes WHERE num=?", (AMINA,)) >= 1


def test_a_node_info_without_a_key_proves_nothing(harness):
    h = harness("idle", "tcp")
    fake = attacker()
    fake.public_key = b""
    send(h, fake.nodeinfo(), fake)
    send(h, fake.text("SOS"), fake)
    h.settle()
    assert [r["trust"] for r in h.rows("SELECT trust FROM incidents")] == ["unverified"]


@pytest.mark.parametrize("look_alike", [
    "\u0410mina D.",          # Cyrillic capital A
    "Amina\u200b D.",         # a zero-width space
    "Amina D. ",              # a trailing space
    "AMINA D.",
    "\uff21mina D.",          # fullwidth A
])
def test_a_look_alike_name_on_another_number_is_an_impostor(harness, look_alike):
    h = harness("idle", "tcp")
    other = attacker(num=0x1234ABCD, name=look_alike, short="XYZ")
    send(h, other.nodeinfo(), other)
    send(h, other.text("SOS"), other)
    h.settle()
    assert [r["trust"] for r in h.rows("SELECT trust FROM incidents")] == ["impostor"]
    assert h.count("SELECT COUNT(*) FROM receipts") == 0


# -- floods -----------------------------------------------------------------------------------------
@pytest.mark.slow          # seconds of real timing; the quick loop leaves it to the full run
def test_a_flood_of_fake_sos_never_delays_her_receipt_nor_hides_her_alert(harness):
    """250 SOS from made-up numbers on the public channel, then hers: her receipt goes first and
    her alert is on the first page of the console."""
    h = harness("idle", "tcp")
    for i in range(250):
        fake = attacker(num=0x20000000 + i, name=f"n{i}", short=f"{i:04d}"[-4:], seed=f"flood{i}")
        send(h, fake.text("SOS"), fake)
    h.sim.stage.press("amina")
    h.settle(timeout=60)
    assert h.count("SELECT COUNT(*) FROM incidents") == 251
    wait_until(lambda: h.count("SELECT COUNT(*) FROM receipts WHERE node_num=? AND sent_at IS NOT NULL",
                               (AMINA,)), 30, what="her receipt sent")
    [(opened,)] = h.rows("SELECT opened_at FROM incidents WHERE node_num=?", (AMINA,))
    [(hers,)] = h.rows("SELECT sent_at FROM receipts WHERE node_num=?", (AMINA,))
    # Once her alert is stored, no stranger's receipt goes before hers (but the one that may have
    # been on its way already: the radio takes one text each 2.5 s).
    between = h.count("SELECT COUNT(*) FROM receipts WHERE node_num != ? AND sent_at > ? AND sent_at < ?",
                      (AMINA, opened, hers))
    assert between <= 1
    # Strangers get a few receipts an hour at most: the air is not theirs.
    assert h.count("SELECT COUNT(*) FROM receipts WHERE node_num != ?", (AMINA,)) <= 12
    from station import queries
    from station.storage import db as dbmod
    page = queries.alerts(dbmod.connect(h.cfg.database_path), limit=50)
    assert page[0]["node_num"] == AMINA


# -- forged acknowledgements --------------------------------------------------------------------------
def test_a_forged_ack_does_not_make_an_undelivered_receipt_delivered(harness):
    h = harness("idle", "tcp", receipts={"ack_timeout_s": 60.0})
    h.sim.radio.unreachable.add(AMINA)             # the real bracelet never hears the receipt
    h.sim.stage.press("amina")
    h.settle()
    wait_until(lambda: h.count("SELECT COUNT(*) FROM receipts WHERE state='sent'") == 1, 15, what="receipt sent")
    packet_id = h.rows("SELECT packet_id FROM receipts")[0][0]
    fake = attacker()
    send(h, fake.routing_ack(packet_id, h.sim.radio.node_num), fake)    # the id is in clear on the air
    h.settle()
    assert h.rows("SELECT state FROM receipts")[0][0] == "sent"
    assert h.count("SELECT COUNT(*) FROM events WHERE action='receipt answer ignored'") == 1
