"""Escalation by SMS through a USB GSM modem: the real library (python-gsmmodem-new) over pyserial
to a virtual modem on a pty that answers its AT commands (tests/fakes/gsm_modem.py). From the
view of a responder on a basic phone (she gets the alert, her reply acknowledges it), of the
technician (a SIM that wants its PIN or a modem with no signal is said in words, and the SIM is
never locked by guessing), and of someone who forges a sender number (no reference, no ACK)."""

from __future__ import annotations

import pytest

from tests.conftest import TimeMachine, wait_until
from tests.fakes.gsm_modem import VirtualModem

MARIA_PHONE = "+221770000001"


@pytest.fixture
def modem(tmp_path):
    made = []

    def make(**kw) -> VirtualModem:
        m = VirtualModem(str(tmp_path / f"modem{len(made)}"), **kw).start()
        made.append(m)
        return m
    yield make
    for m in made:
        m.stop()


def sms_office(harness, modem, tmp_path, *, pin_file: str = "", **modem_kw):
    m = modem(**modem_kw)
    tm = TimeMachine()
    h = harness("idle", time_machine=tm, escalation={"enabled": True},
                sms={"port": m.path, "pin_file": pin_file},
                lists={"responders": [{"name": "Maria", "phone": MARIA_PHONE}],
                       "escalation_steps": [{"after_s": 30, "channels": ["sms"]},
                                            {"after_s": 600, "channels": ["sms"]}]})
    h.modem, h.tm = m, tm
    return h


def open_alert(h) -> tuple[int, str]:
    h.sim.stage.press("amina")
    iid = wait_until(lambda: h.count("SELECT COALESCE(MAX(id),0) FROM incidents WHERE state='open'"), 15, what="alert")
    ref = wait_until(lambda: h.count("SELECT MAX(ref) FROM escalations WHERE incident_id=?", (iid,)), 10, what="chain")
    return iid, ref


def sms_states(h, iid):
    return [tuple(r) for r in h.rows("SELECT step, state FROM notifications WHERE incident_id=? AND channel='sms' "
                                     "ORDER BY id", (iid,))]


def test_the_responder_gets_the_alert_by_sms_and_the_network_reports_it_delivered(harness, modem, tmp_path):
    h = sms_office(harness, modem, tmp_path)
    iid, ref = open_alert(h)
    h.tm.advance(31)
    [sent] = wait_until(lambda: h.modem.sent, 15, what="the SMS")
    assert sent.number == MARIA_PHONE and sent.text.startswith("SOS Amina D.") and sent.text.endswith(f"ACK {ref}")
    assert sent.report_asked and len(sent.text) <= 160
    wait_until(lambda: sms_states(h, iid) == [(0, "delivered")], 15, what="the delivery report")


def test_her_sms_reply_acknowledges_the_alert_and_stops_the_chain(harness, modem, tmp_path):
    h = sms_office(harness, modem, tmp_path)
    iid, ref = open_alert(h)
    h.tm.advance(31)
    wait_until(lambda: h.modem.sent, 15, what="the SMS")
    h.modem.receive_sms("00221770000001", f"Ack {ref}")       # her operator writes the number its own way
    wait_until(lambda: h.count("SELECT state='acknowledged' FROM incidents WHERE id=?", (iid,)), 15, what="ack")
    assert h.rows("SELECT acknowledged_by FROM incidents WHERE id=?", (iid,))[0][0] == "Maria by sms"
    wait_until(lambda: h.station.indicators.level == "acknowledged", 5, what="the room silenced")
    h.tm.advance(700)
    wait_until(lambda: [s.text for s in h.modem.sent if "stand down" in s.text], 15, what="the stand-down")
    assert [s for s in h.modem.sent if s.text.startswith("SOS")] == h.modem.sent[:1]      # step 2 never went


def test_a_reply_without_the_reference_or_from_a_stranger_acknowledges_nothing(harness, modem, tmp_path):
    h = sms_office(harness, modem, tmp_path)
    iid, ref = open_alert(h)
    h.tm.advance(31)
    wait_until(lambda: h.modem.sent, 15, what="the SMS")
    h.modem.receive_sms("+221779999999", f"ACK {ref}")        # a number that is not a responder's
    h.modem.receive_sms(MARIA_PHONE, "on my way, call me")      # hers, but not an acknowledgement
    wait_until(lambda: h.count("SELECT COUNT(*) FROM events WHERE action='SMS ignored'") == 1, 15, what="stranger")
    # Her words are kept for the coordinators, in her alert's log.
    wait_until(lambda: h.count("SELECT COUNT(*) FROM events WHERE incident_id=? AND action='escalation reply' AND "
                               "detail='sms: on my way, call me'", (iid,)), 15, what="her reply logged")
    assert h.count("SELECT state FROM incidents WHERE id=?", (iid,)) == "open"


def test_no_signal_is_retried_and_the_sms_goes_when_the_signal_comes_back(harness, modem, tmp_path):
    h = sms_office(harness, modem, tmp_path, signal=99)
    iid, _ = open_alert(h)
    h.tm.advance(31)
    wait_until(lambda: h.count("SELECT COUNT(*) FROM events WHERE action='notification retried'"), 15, what="retry")
    assert h.rows("SELECT reason FROM notifications WHERE incident_id=?", (iid,))[0][0] == "the modem has no signal"
    assert h.modem.sent == []
    h.modem.signal = 18
    h.tm.advance(20)
    wait_until(lambda: h.modem.sent, 15, what="the SMS once the signal is back")
    wait_until(lambda: sms_states(h, iid) == [(0, "delivered")], 15, what="delivered")


def test_a_sim_that_wants_its_pin_is_said_in_words_and_never_guessed_at(harness, modem, tmp_path):
    h = sms_office(harness, modem, tmp_path, pin="4321")
    iid, _ = open_alert(h)
    h.tm.advance(31)
    wait_until(lambda: sms_states(h, iid) == [(0, "failed")], 15, what="the SMS to fail")
    reason = h.rows("SELECT reason FROM notifications WHERE incident_id=?", (iid,))[0][0]
    assert "asks for its PIN" in reason and "[sms] pin_file" in reason
    assert h.modem.wrong_pins == 0 and not [c for c in h.modem.commands if c.upper().startswith("AT+CPIN=")]


def test_with_the_sim_pin_in_its_file_the_modem_is_unlocked_and_sends(harness, modem, tmp_path):
    pin = tmp_path / "sim.pin"
    pin.write_text("4321\n")
    h = sms_office(harness, modem, tmp_path, pin_file=str(pin), pin="4321")
    iid, _ = open_alert(h)
    h.tm.advance(31)
    wait_until(lambda: sms_states(h, iid) == [(0, "delivered")], 15, what="delivered")
    assert h.modem.unlocked and h.modem.wrong_pins == 0


def test_a_delivery_report_the_modem_could_not_give_at_once_is_read_from_the_sim_later(harness, modem, tmp_path,
                                                                                       caplog):
    """The library reads a report on a thread of its own; when that read times out (the modem busy)
    the report must not be lost with the thread: it is read from the SIM at the next poll."""
    h = sms_office(harness, modem, tmp_path)
    h.modem.deliver = False
    iid, _ = open_alert(h)
    h.tm.advance(31)
    [sent] = wait_until(lambda: h.modem.sent, 15, what="the SMS")
    wait_until(lambda: sms_states(h, iid) == [(0, "sent")], 15, what="sent")
    h.modem.lose_reads = 1
    h.modem.report_delivered(sent)
    wait_until(lambda: sms_states(h, iid) == [(0, "delivered")], 40, what="the report read from the SIM")
    assert h.modem.lose_reads == 0 and any(c.startswith("AT+CMGL") for c in h.modem.commands)
    # Said, not a traceback from the library's thread: read again at once, not at the next 30 s poll.
    assert any("announced a delivery report but it could not be read" in r.getMessage() for r in caplog.records)
