"""The watch between alerts, from the view of the wearer whose bracelet is switched off or taken
from her (the only signal, in an abduction, is silence: someone beyond the room must hear of it),
of the wearer who checks in on time (nobody is woken), and of someone on the mesh with the channel
key (who cannot check in in her name to hide that she did not).

The station runs on the virtual radio; time passes through a TimeMachine, so hours of silence
play in seconds; the chain reaches Maria's own node over the mesh and Omar by email (aiosmtpd
with STARTTLS)."""

from __future__ import annotations

import pytest

from station import incidents, queries
from station.watch import settings
from station.watch.schedule import CheckinPlan
from tests.conftest import TimeMachine, wait_until
from tests.test_escalation import chain_office, mail, notifications, ref_of  # noqa: F401  (the mail fixture)

STEPS = [{"after_s": 60, "notify": ["Maria"], "channels": ["mesh"]},
         {"after_s": 300, "notify": ["Omar"], "channels": ["email"]}]


def watched(harness, mail, *, watch=None, steps=STEPS):  # noqa: F811
    """The office: only Amina and Bashir are watched (Chen's bracelet is off on a shelf)."""
    tm = TimeMachine()
    h = chain_office(harness, mail, time_machine=tm, steps=steps, watch={"enabled": True, **(watch or {})})
    h.tm = tm
    set_watch(h, "chen", watch=False)
    return h


def set_watch(h, name: str, **changes):
    num = h.sim.stage.people[name].num
    return h.station.writer.call(lambda db: settings.update(db, num, changes, "test", h.station.clock.now(),
                                                            h.station.watch.defaults))


def later(h, seconds: float) -> None:
    """Time passes; then one sweep of the watch is certainly over."""
    h.tm.advance(seconds)
    before = h.station.watch.sweeps
    h.station.watch.wake()
    wait_until(lambda: h.station.watch.sweeps > before, 10, what="a sweep of the watch")
    h.station.writer.call(lambda db: None)


def heard(h, name: str, battery: int = 64) -> None:
    b = h.sim.stage.people[name]
    before = h.count("SELECT COALESCE(MAX(id), 0) FROM telemetry WHERE node_num=?", (b.num,))
    h.sim.stage.act(b, [b.position(), b.telemetry(battery, 3.9)])
    wait_until(lambda: h.count("SELECT COALESCE(MAX(id), 0) FROM telemetry WHERE node_num=?", (b.num,)) > before,
               15, what=f"{name}'s report")


def alarms(h, source: str) -> list:
    return [dict(r) for r in h.rows("SELECT * FROM incidents WHERE source=? ORDER BY id", (source,))]


def actions(h, iid=None) -> list[str]:
    where = "incident_id IS NULL" if iid is None else "incident_id=?"
    return [r[0] for r in h.rows(f"SELECT action FROM events WHERE {where} ORDER BY id", () if iid is None else (iid,))]


def test_a_bracelet_that_falls_silent_is_flagged_then_raises_an_alert_that_reaches_a_responder(harness, mail):  # noqa: F811
    h = watched(harness, mail)
    set_watch(h, "bashir", watch=False)
    amina = h.sim.stage.people["amina"]
    heard(h, "amina")
    later(h, 2 * 900 + 10)
    # Two reports missed: the office sees it; nobody is woken yet.
    silent = queries.worries(h.db(), h.station.clock.now(), 900, 20)["silent"]
    assert [b["label"] for b in silent] == ["Amina D."] and alarms(h, "silent") == []
    later(h, 3600 - 1800)
    [alarm] = wait_until(lambda: alarms(h, "silent"), 10, what="the silent alarm")
    assert (alarm["node_num"], alarm["state"], alarm["trust"], alarm["press_count"]) == (amina.num, "open",
                                                                                         "registered", 0)
    assert (round(alarm["lat"], 4), round(alarm["lon"], 4)) == (14.6937, -17.4441)     # where she was last heard
    [detail] = [r[0] for r in h.rows("SELECT detail FROM events WHERE incident_id=? AND action='bracelet silent'",
                                     (alarm["id"],))]
    assert "nothing heard for 60 min" in detail and "battery 64%" in detail
    wait_until(lambda: h.station.indicators.level == "open", 5, what="the room to ring")
    # Nothing goes back to her bracelet (whoever holds it learns nothing), nothing to the public.
    assert h.count("SELECT COUNT(*) FROM receipts WHERE incident_id=? AND kind != 'escalation'", (alarm["id"],)) == 0
    assert (alarm["relay_planned"], alarm["relay_followed_up"]) == (1, 1)
    # The chain: Maria's node is told first, with when the bracelet was last heard.
    ref = ref_of(h, alarm["id"])
    later(h, 61)
    text = wait_until(lambda: [t for t in h.maria.texts_received() if t.startswith("SILENT")], 20, what="her DM")[0]
    assert text.startswith("SILENT Amina D. !b5a1e001") and "last heard" in text and f"Reply ACK {ref}" in text
    h.sim.stage.send(h.maria.message_to(h.sim.radio.node_num, f"ACK {ref}"), sender=h.maria)
    wait_until(lambda: h.count("SELECT state FROM incidents WHERE id=?", (alarm["id"],)) == "acknowledged", 15,
               what="her acknowledgement")
    later(h, 400)
    assert mail.to("omar@ngo.example") == []            # step 2 never came
    assert [n["channel"] for n in notifications(h, alarm["id"]) if n["step"] >= 0] == ["mesh"]


def test_one_silence_is_one_alarm_and_her_press_meanwhile_is_an_alert_of_its_own(harness, mail):  # noqa: F811
    h = watched(harness, mail, watch={"silent_alarm_after_s": 1800})
    set_watch(h, "bashir", watch=False)
    heard(h, "amina")
    later(h, 1900)
    [alarm] = wait_until(lambda: alarms(h, "silent"), 10, what="the silent alarm")
    # She presses: her SOS is not folded into the station's alarm (it is hers, with her consent).
    h.sim.stage.press("amina")
    sos = wait_until(lambda: h.count("SELECT MAX(id) FROM incidents WHERE source != 'silent'"), 15, what="her SOS")
    assert sos != alarm["id"]
    h.station.writer.call(lambda db: incidents.resolve(db, sos, "safe", "coordinator", h.station.clock.now()))
    # A coordinator closes the silent alarm; the bracelet is still silent: it does not open again.
    h.station.writer.call(lambda db: incidents.resolve(db, alarm["id"], "safe", "coordinator", h.station.clock.now()))
    later(h, 4000)
    assert len(alarms(h, "silent")) == 1
    # Heard again, then silent again: a new silence, a new alarm.
    heard(h, "amina")
    later(h, 5)
    assert "bracelet heard again" in actions(h, alarm["id"])
    later(h, 1900)
    assert len(wait_until(lambda: alarms(h, "silent")[1:], 10, what="the second alarm")) == 1


def test_a_bracelet_never_heard_while_the_radio_was_unplugged_is_not_called_silent(harness, mail):  # noqa: F811
    """The station heard nothing at all: that is the radio's silence, not hers (the banner says
    the radio is down). Counting starts again when it is back."""
    h = watched(harness, mail, watch={"silent_alarm_after_s": 1800})
    set_watch(h, "bashir", watch=False)
    heard(h, "amina")
    h.station.link.stop()
    wait_until(lambda: h.station.link.state.status != "connected", 10, what="the radio to go")
    later(h, 10)
    later(h, 4000)
    assert alarms(h, "silent") == []
    assert h.station.watch.listening_since(h.station.clock.now()) is None


def test_a_missed_check_in_raises_an_alert_through_the_chain(harness, mail):  # noqa: F811
    h = watched(harness, mail, watch={"silent_alarm_after_s": 0, "checkin_grace_s": 600})
    set_watch(h, "bashir", watch=False)
    since = h.station.clock.now()
    set_watch(h, "amina", checkin_every_h=1, checkin_from="00:00", checkin_to="00:00")
    due = CheckinPlan(3600, "00:00", "00:00").deadline(since)
    later(h, due - since + 600 - 60)                      # within her grace: nothing yet
    assert alarms(h, "checkin") == []
    later(h, 120)
    [alarm] = wait_until(lambda: alarms(h, "checkin"), 10, what="the missed check-in")
    assert "check-in missed" in actions(h, alarm["id"])
    later(h, 61 + 300)
    [msg] = wait_until(lambda: mail.to("omar@ngo.example"), 15, what="the email to Omar")
    assert msg.get_content().startswith("MISSED CHECK-IN Amina D. !b5a1e001")


def test_a_check_in_on_time_resets_her_timer_and_wakes_nobody(harness, mail):  # noqa: F811
    h = watched(harness, mail, watch={"silent_alarm_after_s": 0, "checkin_grace_s": 300})
    set_watch(h, "bashir", watch=False)
    amina = h.sim.stage.people["amina"]
    set_watch(h, "amina", checkin_every_h=1, checkin_from="00:00", checkin_to="00:00")
    since = h.station.clock.now()
    plan = CheckinPlan(3600, "00:00", "00:00")
    later(h, plan.deadline(since) - since - 600)
    # From the app paired with her bracelet: "OK" to the station, sealed with her key.
    h.sim.stage.send(amina.message_to(h.sim.radio.node_num, "OK"), sender=amina)
    checked = wait_until(lambda: h.count("SELECT MAX(last_checkin_at) FROM watch_state WHERE node_num=?", (amina.num,)),
                         15, what="her check-in")
    assert "checked in" in actions(h)
    later(h, 1200)                                        # her first deadline and its grace pass
    assert alarms(h, "checkin") == [] and alarms(h, "keyword") == []
    # The timer runs from her check-in: the next one is missed, and that is an alarm.
    later(h, plan.deadline(checked) - h.station.clock.now() + 301)
    assert len(wait_until(lambda: alarms(h, "checkin"), 10, what="the next missed check-in")) == 1


def test_a_t_echo_checks_in_with_its_canned_ok_and_the_bell_does_not_make_it_an_sos(harness, mail):  # noqa: F811
    """The T-Echo's canned messages all carry the bell when send_bell is on
    (CannedMessageModule.cpp:1059-1062), and go to the station sealed with PKI (:1047-1050)."""
    h = watched(harness, mail, watch={"silent_alarm_after_s": 0})
    set_watch(h, "amina", watch=False)
    bashir = h.sim.stage.people["bashir"]
    set_watch(h, "bashir", checkin_every_h=2, checkin_from="00:00", checkin_to="00:00")
    [packet] = bashir.canned("OK", to=h.sim.radio.node_num)
    assert packet.decoded.payload == b"OK\x07"
    h.sim.stage.send(packet, sender=bashir)
    wait_until(lambda: h.count("SELECT MAX(last_checkin_at) FROM watch_state WHERE node_num=?", (bashir.num,)), 15,
               what="his check-in")
    assert h.count("SELECT COUNT(*) FROM incidents") == 0


def test_someone_with_the_channel_key_cannot_check_in_in_her_name(harness, mail):  # noqa: F811
    """"OK" on the office channel under her number proves only that the sender holds the channel
    key: it is logged and ignored, and her missed check-in still raises the alarm."""
    h = watched(harness, mail, watch={"silent_alarm_after_s": 0, "checkin_grace_s": 300})
    set_watch(h, "bashir", watch=False)
    amina = h.sim.stage.people["amina"]
    since = h.station.clock.now()
    set_watch(h, "amina", checkin_every_h=1, checkin_from="00:00", checkin_to="00:00")
    h.sim.stage.send(amina.text("OK"), sender=amina)       # a broadcast: channel key, no PKI
    wait_until(lambda: "check-in ignored" in actions(h), 15, what="the forged check-in to be logged")
    assert h.count("SELECT COUNT(*) FROM watch_state WHERE node_num=? AND last_checkin_at IS NOT NULL",
                   (amina.num,)) == 0
    later(h, CheckinPlan(3600, "00:00", "00:00").deadline(since) - since + 301)
    assert len(wait_until(lambda: alarms(h, "checkin"), 10, what="the missed check-in")) == 1


def test_a_low_battery_warns_the_office_once_and_external_power_never_does(harness, mail):  # noqa: F811
    h = watched(harness, mail, watch={"silent_alarm_after_s": 0})
    heard(h, "amina", battery=15)
    later(h, 5)
    heard(h, "amina", battery=14)
    later(h, 5)
    heard(h, "chen", battery=5)          # on external power: the firmware sends 101, whatever the cell says
    later(h, 5)
    [detail] = [r[0] for r in h.rows("SELECT detail FROM events WHERE action='battery low'")]
    assert detail.startswith("Amina D.: battery 15%")
    assert h.count("SELECT external_power FROM nodes WHERE num=?", (h.sim.stage.people["chen"].num,)) == 1
    # Charged: the next time it runs down is a new warning.
    heard(h, "amina", battery=90)
    later(h, 5)
    heard(h, "amina", battery=18)
    later(h, 5)
    assert h.count("SELECT COUNT(*) FROM events WHERE action='battery low'") == 2


@pytest.mark.parametrize("changes, problem", [
    ({"silent_alarm_min": 20}, "must come after at least two missed reports (30 min)"),
    ({"report_every_min": "often"}, "report_every_min must be a number"),
    ({"checkin_every_h": 6, "checkin_from": "08:00", "checkin_to": "12:00"}, "never falls due in a window of 4 h"),
    ({"checkin_every_h": 4, "checkin_from": "8h", "checkin_to": "20:00"}, "a time of day is HH:MM"),
    ({"checkin_every_h": 0.1}, "at least 10 minutes apart"),
    ({"colour": "red"}, "unknown watch field colour"),
])
def test_a_setting_that_cannot_work_is_refused_with_the_reason(tmp_path, changes, problem):
    from station.storage import db as dbmod
    from station.storage.migrations import migrate
    from station.watch.rules import Defaults
    db = dbmod.connect(tmp_path / "s.db")
    migrate(db)
    db.execute("INSERT INTO bracelets (node_num, label, public_key, added_at) VALUES (1, 'Amina D.', 'k', 0)")
    with pytest.raises(settings.WatchError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        settings.update(db, 1, changes, "test", 1000.0, Defaults())


def _local(text: str, zone: str) -> float:
    import zoneinfo
    from datetime import datetime
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=zoneinfo.ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize("every_h, start, end, zone, base, due", [
    # "At least every 4 hours from 08:00 to 20:00": the timer starts when the window opens.
    (4, "08:00", "20:00", "UTC", "2026-12-02 07:00", "2026-12-02 12:00"),
    (4, "08:00", "20:00", "UTC", "2026-12-02 09:30", "2026-12-02 13:30"),     # her check-in restarts it
    (4, "08:00", "20:00", "UTC", "2026-12-02 16:00", "2026-12-02 20:00"),     # due as the window closes
    (4, "08:00", "20:00", "UTC", "2026-12-02 19:30", "2026-12-03 12:00"),     # carries her to the morning
    (4, "08:00", "20:00", "Africa/Dakar", "2026-12-02 21:00", "2026-12-03 12:00"),
    # A night shift, over midnight.
    (3, "22:00", "06:00", "UTC", "2026-12-02 23:00", "2026-12-03 02:00"),
    (3, "22:00", "06:00", "UTC", "2026-12-03 04:00", "2026-12-04 01:00"),
    # The night the clocks go forward in Paris (02:00 becomes 03:00): two hours are two hours.
    (2, "00:00", "06:00", "Europe/Paris", "2026-03-29 00:00", "2026-03-29 03:00"),
])
def test_check_in_deadlines_follow_her_schedule_in_the_offices_time_zone(every_h, start, end, zone, base, due):
    plan = CheckinPlan(every_h * 3600, start, end, zone)
    assert plan.deadline(_local(base, zone)) == _local(due, zone)


def test_a_restart_neither_repeats_a_silent_alarm_nor_forgets_one(tmp_path):
    """Everything the watch has raised is in the database: a new daemon (a new sweep with no
    memory) finds the alarm already raised."""
    from station.storage import db as dbmod
    from station.storage.migrations import migrate
    from station.watch import rules
    db = dbmod.connect(tmp_path / "s.db")
    migrate(db)
    db.execute("INSERT INTO bracelets (node_num, label, public_key, added_at) VALUES (1, 'Amina D.', 'k', 0)")
    db.execute("INSERT INTO nodes (num, node_id, first_heard, last_heard) VALUES (1, '!00000001', 0, 1000)")
    d = rules.Defaults(silent_alarm_s=1800)
    assert rules.sweep(db, 1000 + 1700, d, 0.0, False) == []
    [first] = rules.sweep(db, 1000 + 1900, d, 0.0, False)
    assert rules.sweep(db, 1000 + 1905, d, 0.0, False) == [] and rules.sweep(db, 9000, d, 0.0, False) == []
    db.execute("UPDATE incidents SET state='resolved' WHERE id=?", (first.incident_id,))
    assert rules.sweep(db, 20000, d, 0.0, False) == []                   # still the same silence
    # Listening only since 19000 (the station was off): her silence counts from then.
    db.execute("UPDATE nodes SET last_heard=19500")
    assert rules.sweep(db, 19500 + 1900, d, 19000.0, False) != []


def test_a_reload_applies_the_watch_at_once(harness, tmp_path):
    """`systemctl reload station` after the office lengthens the silent alarm and changes the
    check-in word: the next sweep and the next "OK" use them, no restart."""
    from station import daemon
    h = harness(watch={"enabled": True})
    path = tmp_path / "new.toml"
    path.write_text(f'[storage]\ndatabase = "{h.cfg.database_path}"\n[gpio]\nenabled = false\n'
                    f'[radio]\nport = "{h.cfg.radio["port"]}"\n'
                    '[watch]\nsilent_alarm_after_s = 7200\ncheckin_word = "BIEN"\n')
    applied, _ = daemon.reload_config(h.station, path)
    assert "watch" in applied
    assert h.station.watch.defaults.silent_alarm_s == 7200 and h.station.watch.defaults.checkin_word == "BIEN"
    assert h.station.ingest.rules.checkin_words == ("BIEN",)


def test_the_default_reporting_interval_is_the_one_the_bracelet_profile_writes():
    """A bracelet provisioned by the station reports its battery every TELEMETRY_S: the watch
    expects exactly that, or it would warn of silence that is only its own misreading."""
    from station.config import SCHEMA
    from station.radio.provision import TELEMETRY_S
    assert SCHEMA["watch"]["report_every_s"].default == TELEMETRY_S
