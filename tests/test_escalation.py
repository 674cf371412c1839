"""Beyond the room: an SOS that nobody in the office answers reaches the responders on call, step
by step, until one of them answers; her answer, on any channel, stops the chain and silences the
room. From the view of the wearer (her alert reaches a person at 3 a.m.), of the responder (she
is told once per step, with where and how to answer, and told to stand down), and of someone on
the mesh with the channel key (who cannot acknowledge her alert in a responder's name).

The station runs on the virtual radio; time passes through a TimeMachine, so a chain of minutes
plays in seconds, and mail goes to a real SMTP server requiring STARTTLS (aiosmtpd)."""

from __future__ import annotations

import base64
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from station.radio.virtual.bracelets import Bracelet, cast
from tests.conftest import TimeMachine, free_port, listening, register_cast, wait_until
from tests.fakes.smtp import MailServer
from tests.test_attacks import _trace, office  # noqa: F401  (the office fixture: X and a partners' webhook)

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
    return wait_until(lambda: h.count("SELECT MAX(ref) FROM escalations WHERE incident_id=?", (iid,)), 10,
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


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_chain_neither_skips_a_step_nor_fires_one_twice(tmp_path, mail):
    """The station dies (power cut, OOM) again and again while a chain runs: after each restart it
    goes on where it was. Every step fires once (its event is written with its messages), every
    message reaches the server, and a second copy happens only when the station died between
    claiming a message and hearing the server take it, which its row then says."""
    rng = random.Random(20261203)
    port, db_path = free_port(), tmp_path / "station.db"
    steps = "\n".join(f'[[escalation_steps]]\nafter_s = {a}\nnotify = ["{who}"]\nchannels = ["email"]\n'
                      for a, who in [(1, "Maria"), (1.5, "Omar"), (1.5, "Maria"), (1.5, "Omar"), (1.5, "Maria"),
                                     (1.5, "Omar")])
    cfg = tmp_path / "station.toml"
    cfg.write_text(f"""
[radio]
port = "tcp://127.0.0.1:{port}"
heartbeat_s = 0.5
liveness_timeout_s = 3.0
handshake_timeout_s = 3.0
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[storage]
database = "{db_path}"
[gpio]
enabled = false
[log]
level = "WARNING"
[escalation]
enabled = true
[email]
host = "localhost"
port = {mail.port}
ca_file = "{mail.ca}"
sender = "station@ngo.example"
[[responders]]
name = "Maria"
email = "maria@ngo.example"
[[responders]]
name = "Omar"
email = "omar@ngo.example"
{steps}""")
    register_cast(db_path, cast())

    def run() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "run"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def fired() -> int:
        with sqlite3.connect(db_path) as c:
            try:
                return c.execute("SELECT COALESCE(MAX(next_step), 0) FROM escalations").fetchone()[0]
            except sqlite3.OperationalError:
                return 0
    radio = subprocess.Popen([sys.executable, "-m", "station", "radio", "simulate", "--tcp", str(port), "--scenario",
                              "sos"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: listening(port), 10, 0.05, what="virtual radio listening")
    kills = 0
    try:
        while fired() < 6:
            p = run()
            before = fired()
            wait_until(lambda: fired() > before, 60, 0.02, what=f"a step after restart {kills}")
            time.sleep(rng.uniform(0.0, 1.2))        # a random moment to die at, as in test_crash.py
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
            kills += 1
        final = run()
        from station import runtime
        wait_until(lambda: (runtime.read_status(db_path) or ({},))[0].get("station", {}).get("pid") == final.pid, 30,
                   what="the last station running")
        with sqlite3.connect(db_path) as c:
            wait_until(lambda: c.execute("SELECT COUNT(*) FROM notifications WHERE state='sent'").fetchone()[0] == 6,
                       60, what="every message sent")
        final.send_signal(signal.SIGTERM)
        assert final.wait(15) == 0
    finally:
        radio.send_signal(signal.SIGTERM)
        radio.wait(10)
    with sqlite3.connect(db_path) as c:
        rows = c.execute("SELECT id, step, responder, reason, external_id FROM notifications ORDER BY step").fetchall()
        fired_events = c.execute("SELECT COUNT(*) FROM events WHERE action='escalation step'").fetchone()[0]
    assert kills >= 3
    assert [(r[1], r[2]) for r in rows] == [(0, "Maria"), (1, "Omar"), (2, "Maria"), (3, "Omar"), (4, "Maria"),
                                            (5, "Omar")]
    assert fired_events == 6
    arrived: dict[str, int] = {}
    for _, m, _ in mail.messages:
        arrived[m["Message-ID"]] = arrived.get(m["Message-ID"], 0) + 1
    for nid, step, who, reason, external in rows:
        copies = sum(n for mid, n in arrived.items() if mid.startswith(f"<notification-{nid}."))
        assert copies >= 1, f"step {step} never reached {who}"
        assert copies == 1 or "may arrive twice" in (reason or ""), f"step {step} reached {who} {copies} times"


@pytest.mark.slow          # two whole alert lives in real time, as in test_attacks.py
def test_a_duress_tells_her_trusted_contacts_and_the_chain_while_outside_it_looks_like_a_real_cancel(office, mail):  # noqa: F811
    """She is made to cancel with the duress PIN. Her trusted contact (Maria) and the chain (Omar)
    are told at once; the bracelet and every public destination see exactly what a real cancel
    gives, and after a real cancel nobody beyond the room is told anything."""
    chain = dict(escalation={"enabled": True},
                 email={"host": "localhost", "port": mail.port, "ca_file": str(mail.ca), "sender": "station@ngo.example"},
                 lists={"responders": [{"name": "Maria", "email": "maria@ngo.example", "contact_for": ["!b5a1e001"]},
                                       {"name": "Omar", "email": "omar@ngo.example"}],
                        "escalation_steps": [{"after_s": 900, "notify": ["Omar"], "channels": ["email"]}]})
    real = _trace(lambda scenario: office(scenario, **chain), lambda b: b.cancel_pin)
    assert mail.messages == []
    forced = _trace(lambda scenario: office(scenario, **chain), lambda b: b.duress_pin)
    assert forced == real
    [to_maria] = wait_until(lambda: mail.to("maria@ngo.example"), 15, what="her trusted contact told")
    [to_omar] = wait_until(lambda: mail.to("omar@ngo.example"), 15, what="the chain told")
    for m in (to_maria, to_omar):
        assert m.get_content().startswith("DURESS Amina D.") and "do not message her bracelet" in m.get_content()
