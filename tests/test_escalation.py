"""Beyond the room: an SOS that nobody in the office answers reaches the responders on call, step
by step, until one of them answers; her answer, on any channel, stops the chain and silences the
room. From the view of the wearer (her alert reaches a person at 3 a.m.), of the responder (she
is told once per step, with where and how to answer, and told to stand down), and of someone on
the mesh with the channel key (who cannot acknowledge her alert in a responder's name).

The station runs on the virtual radio; time passes through a TimeMachine, so a chain of minutes
plays in seconds, and mail goes to a real SMTP server requiring STARTTLS (aiosmtpd)."""

from __future__ import annotations

import base64

import pytest

from station.radio.virtual.bracelets import Bracelet
from tests.conftest import TimeMachine, wait_until
from tests.fakes.smtp import MailServer

MARIA_NODE = 0xC0FFEE01


def responder_node() -> Bracelet:
    """Maria's own handheld node, paired with her phone: not a bracelet, a responder."""
    return Bracelet(num=MARIA_NODE, long_name="Maria (on call)", short_name="MAR", device="heltec-v3")


@pytest.fixture
def mail(tmp_path):
    server = MailServer(tmp_path / "mail").start()
    yield server
    server.stop()


def chain_office(harness, mail, *, steps, maria=None, responders=None, time_machine=None, scenario="idle", **kw):
    """A station whose escalation reaches Maria (mesh and email) then Omar (email)."""
    maria = maria or responder_node()
    people = responders or [
        {"name": "Maria", "node": f"!{MARIA_NODE:08x}", "public_key": base64.b64encode(maria.public_key).decode(),
         "email": "maria@ngo.example", "contact_for": ["!b5a1e001"]},
        {"name": "Omar", "email": "omar@ngo.example"},
    ]
    h = harness(scenario, start=False, time_machine=time_machine or TimeMachine(),
                escalation={"enabled": True},
                email={"host": "localhost", "port": mail.port, "ca_file": str(mail.ca), "sender": "station@ngo.example"},
                lists={"responders": people, "escalation_steps": steps}, **kw)
    h.sim.radio.add_node(maria, known=True)
    h.maria = maria
    h.start()
    return h


def open_alert(h) -> int:
    """Amina's bracelet reports her position and battery, then she presses."""
    amina = h.sim.stage.people["amina"]
    h.sim.stage.act(amina, [amina.position(), amina.telemetry(64, 3.9)])
    wait_until(lambda: h.count("SELECT COUNT(*) FROM nodes WHERE num=? AND battery_level=64 AND lat IS NOT NULL",
                               (amina.num,)), 15, what="her position and battery")
    h.sim.stage.press("amina")
    return wait_until(lambda: h.count("SELECT COALESCE(MAX(id),0) FROM incidents WHERE state='open' AND node_num=?",
                                      (amina.num,)), 15, what="the alert to open")


def notifications(h, iid):
    return [dict(r) for r in h.rows("SELECT * FROM notifications WHERE incident_id=? ORDER BY id", (iid,))]


def ref_of(h, iid) -> str:
    return wait_until(lambda: h.count("SELECT ref FROM escalations WHERE incident_id=?", (iid,)), 10,
                      what="the chain to start")


def test_nobody_in_the_office_answers_so_the_on_call_responder_is_emailed_after_the_first_delay(harness, mail):
    tm = TimeMachine()
    h = chain_office(harness, mail, time_machine=tm, steps=[{"after_s": 120, "notify": ["Omar"], "channels": ["email"]}])
    iid = open_alert(h)
    ref = ref_of(h, iid)
    h.station.writer.call(lambda db: None)
    assert mail.messages == [] and notifications(h, iid) == []      # the office has two minutes
    tm.advance(121)
    [msg] = wait_until(lambda: mail.to("omar@ngo.example"), 15, what="the email to Omar")
    body = msg.get_content()
    # Who, where (exact, with its time), her battery, and how to answer: readable without the internet.
    assert body.startswith("SOS Amina D. !b5a1e001") and "at 14.69370,-17.44410" in body and "batt 64%" in body
    assert f"Reply ACK {ref}" in body and msg["Subject"].startswith("SOS Amina D.")
    [n] = wait_until(lambda: [n for n in notifications(h, iid) if n["state"] == "sent"], 10, what="sent")
    assert (n["channel"], n["responder"], n["address"], n["step"]) == ("email", "Omar", "omar@ngo.example", 0)
    assert n["external_id"] == msg["Message-ID"]
    actions = [r[0] for r in h.rows("SELECT action FROM events WHERE incident_id=? ORDER BY id", (iid,))]
    assert actions.index("escalation started") < actions.index("escalation step") < actions.index("notification sent")


def test_the_responder_acknowledges_from_her_own_node_and_the_chain_stops_and_the_room_falls_silent(harness, mail):
    tm = TimeMachine()
    h = chain_office(harness, mail, time_machine=tm, steps=[
        {"after_s": 60, "notify": ["Maria"], "channels": ["mesh"]},
        {"after_s": 300, "notify": ["Omar"], "channels": ["email"]}])
    iid = open_alert(h)
    ref = ref_of(h, iid)
    assert h.station.indicators.level == "open"
    tm.advance(61)
    # Her node got the message over PKI and acknowledged it: delivered, not merely sent.
    text = wait_until(lambda: [t for t in h.maria.texts_received() if t.startswith("SOS")], 20, what="her DM")[0]
    assert f"Reply ACK {ref}" in text
    wait_until(lambda: [n["state"] for n in notifications(h, iid)] == ["delivered"], 20, what="delivered")
    # She answers from the Meshtastic app paired with her node: a DM sealed with her key.
    h.sim.stage.send(h.maria.message_to(h.sim.radio.node_num, f"ack {ref.lower()}"), sender=h.maria)
    wait_until(lambda: h.count("SELECT state='acknowledged' FROM incidents WHERE id=?", (iid,)), 15, what="ack")
    assert h.rows("SELECT acknowledged_by FROM incidents WHERE id=?", (iid,))[0][0] == "Maria by mesh"
    wait_until(lambda: h.station.indicators.level == "acknowledged", 5, what="the buzzer to stop")
    tm.advance(400)                          # step 2's time comes: nothing goes to Omar
    wait_until(lambda: h.count("SELECT state='stopped' FROM escalations WHERE incident_id=?", (iid,)), 5, what="stop")
    h.station.writer.call(lambda db: None)
    assert mail.to("omar@ngo.example") == []
    # Maria, who was told, is told it is in hand.
    wait_until(lambda: [t for t in h.maria.texts_received() if "stand down" in t], 20, what="the stand-down")


def test_someone_with_the_channel_key_cannot_acknowledge_in_the_responders_name(harness, mail):
    """An attacker on the mesh types `ACK 17XY` under Maria's node number, on the office channel
    whose key they hold: not sealed with her key, it acknowledges nothing and the chain goes on."""
    tm = TimeMachine()
    h = chain_office(harness, mail, time_machine=tm, steps=[
        {"after_s": 10, "notify": ["Maria"], "channels": ["mesh"]},
        {"after_s": 60, "notify": ["Omar"], "channels": ["email"]}])
    iid = open_alert(h)
    ref = ref_of(h, iid)
    tm.advance(11)
    wait_until(lambda: h.maria.texts_received(), 20, what="her DM")
    forger = Bracelet(num=MARIA_NODE, long_name="Maria (on call)", short_name="MAR", device="heltec-v3",
                      key_seed="someone else", knows_station_key=False)
    # A DM under her number not sealed with her key never even reaches the station decoded (the
    # radio holds her key, so it expects PKI: Router.cpp); what gets through is a channel message.
    h.sim.stage.send(forger.text(f"ACK {ref}"), sender=forger)
    wait_until(lambda: h.count("SELECT COUNT(*) FROM events WHERE action='escalation answer ignored'"), 15,
               what="the forged answer to be refused")
    assert h.count("SELECT state FROM incidents WHERE id=?", (iid,)) == "open"
    tm.advance(61)
    wait_until(lambda: mail.to("omar@ngo.example"), 15, what="step 2 all the same")


def test_an_acknowledgement_on_the_console_stops_the_chain_before_its_next_step(harness, mail):
    from station import incidents
    tm = TimeMachine()
    h = chain_office(harness, mail, time_machine=tm, steps=[{"after_s": 30, "notify": ["Omar"], "channels": ["email"]}])
    iid = open_alert(h)
    ref_of(h, iid)
    at = h.station.clock.now()
    h.station.writer.call(lambda db: incidents.acknowledge(db, iid, "coordinator", at))
    wait_until(lambda: h.count("SELECT state='stopped' FROM escalations WHERE incident_id=?", (iid,)), 5, what="stop")
    tm.advance(60)
    h.station.writer.call(lambda db: None)
    assert mail.messages == [] and notifications(h, iid) == []


def test_a_drill_never_wakes_a_responder(harness, mail):
    from station import incidents
    from station.decode.packets import Alert
    h = chain_office(harness, mail, steps=[{"after_s": 0, "notify": "all", "channels": ["email"]}])
    at = h.station.clock.now()
    drill = h.station.writer.call(lambda db: incidents.raise_alert(
        db, 0xB5A1E002, Alert("keyword", "SOS"), at, packet_row=None, fold_window_s=600, drill=True).incident_id)
    real = open_alert(h)
    wait_until(lambda: mail.to("omar@ngo.example"), 15, what="the real alert's email")
    assert h.count("SELECT COUNT(*) FROM escalations WHERE incident_id=?", (drill,)) == 0
    assert all("Bashir" not in m.get_content() for _, m, _ in mail.messages) and real != drill
