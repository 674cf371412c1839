"""`station bracelets watch` and `station escalation`, from the view of the office worker at the
terminal: she gives Amina check-ins and sees when the next one is due; she sees who an alert
would reach right now and where each running chain stands."""

from __future__ import annotations

import json

from tests.test_cli import KEY, run_cli  # noqa: F401  (fixture)


def test_the_office_sets_her_check_ins_from_the_command_line_and_sees_the_next_one_due(run_cli):  # noqa: F811
    run_cli("bracelets", "add", "!b5a1e001", "--label", "Amina D.", "--public-key", KEY)
    out = run_cli("bracelets", "watch", "!b5a1e001", "--checkin", "4", "--from", "08:00", "--to", "20:00",
                  "--silent-alarm", "90").output
    assert "alarm after 90 min, check-ins every 4 h from 08:00 to 20:00" in out
    [row] = json.loads(run_cli("bracelets", "watch", "!b5a1e001", "--json").output)
    assert (row["silent_alarm_min"], row["silent_alarm_own"], row["checkin_every_h"]) == (90, True, 4)
    assert row["report_every_min"] == 15 and not row["report_every_own"] and row["next_checkin_due"] is not None
    table = run_cli("bracelets", "watch").output
    assert "every 4 h from 08:00 to 20:00" in table.splitlines()[1] and "NEXT DUE" in table
    # Back to the station's default; check-ins off.
    run_cli("bracelets", "watch", "!b5a1e001", "--silent-alarm", "default", "--checkin", "0")
    [row] = json.loads(run_cli("bracelets", "watch", "!b5a1e001", "--json").output)
    assert (row["silent_alarm_min"], row["silent_alarm_own"], row["checkin"]) == (60, False, None)


def test_a_watch_that_cannot_work_is_refused_at_the_terminal(run_cli):  # noqa: F811
    run_cli("bracelets", "add", "!b5a1e001", "--label", "Amina D.", "--public-key", KEY)
    from click.testing import CliRunner
    from station.cli import cli
    result = CliRunner().invoke(cli, ["--config", str(run_cli.config), "bracelets", "watch", "!b5a1e001",
                                      "--silent-alarm", "10"])
    assert result.exit_code == 1 and "must come after at least two missed reports (30 min)" in result.output
    result = CliRunner().invoke(cli, ["--config", str(run_cli.config), "bracelets", "watch", "--checkin", "2"])
    assert result.exit_code == 2 and "give the NODE" in result.output


def test_escalation_shows_who_a_step_reaches_now_and_each_running_chain(run_cli):  # noqa: F811
    run_cli.config.write_text(run_cli.config.read_text() + """
[escalation]
enabled = true
[[responders]]
name = "Maria"
email = "maria@ngo.example"
on_call = ["daily 00:00-24:00"]
[[responders]]
name = "Omar"
phone = "+221770000002"
on_call = []
[[escalation_steps]]
after_s = 120
notify = "on_call"
channels = ["email"]
""")
    off = run_cli("escalation").output
    assert "escalation is OFF" not in off
    data = json.loads(run_cli("escalation", "--json").output)
    assert data["active"] and data["steps"] == [{"step": 1, "after_s": 120, "channels": ["email"],
                                                 "reaches_now": ["Maria", "Omar"]}]
    assert [(r["name"], r["channels"]) for r in data["responders"]] == [("Maria", ["email"]), ("Omar", ["sms"])]
    import sqlite3
    with sqlite3.connect(run_cli.db_path) as db:
        db.execute("INSERT INTO escalations (incident_id, kind, ref, started_at, next_step, next_at, state) "
                   "VALUES (4, 'alert', '4KX', 0, 0, 120, 'running')")
        db.execute("INSERT INTO notifications (incident_id, step, responder, channel, address, text, state, "
                   "created_at, updated_at, reason) VALUES (4, 0, 'Maria', 'email', 'maria@ngo.example', 't', "
                   "'failed', 0, 0, 'mailbox full')")
    out = run_cli("escalation").output
    assert "4KX" in out and "step 1 at 1970-01-01 00:02:00Z" in out and "mailbox full" in out


def test_with_no_escalation_configured_the_office_is_told_nobody_beyond_the_room_is_reached(run_cli):  # noqa: F811
    assert "escalation is OFF: alerts ring the room and nobody beyond it" in run_cli("escalation").output
