"""The wearers page sets each wearer's watch: a coordinator gives Amina check-ins every 4 hours
from 08:00 to 20:00 and a longer silence before the alarm; a viewer (a volunteer at the desk)
sees it and cannot change it; a setting that cannot work is refused with the reason."""

from __future__ import annotations

import sqlite3

from station.storage.writer import Writer

from .test_console_security import app, login  # noqa: F401  (fixture)


def _amina(app):  # noqa: F811
    w = Writer(app.station_config.database_path).start()
    w.call(lambda db: db.execute("INSERT INTO bracelets (node_num, label, public_key, added_at) "
                                 "VALUES (7, 'Amina', 'k', 0)"))
    w.stop()


def _row(app):  # noqa: F811
    with sqlite3.connect(app.station_config.database_path) as db:
        return db.execute("SELECT watch, report_every_s, silent_alarm_s, checkin_every_s, checkin_from, checkin_to "
                          "FROM bracelets WHERE node_num=7").fetchone()


def test_a_coordinator_sets_her_check_ins_and_silence_and_a_viewer_cannot(app):  # noqa: F811
    _amina(app)
    form = {"watch": "on", "report_every_min": "", "silent_alarm_min": "120", "checkin_every_h": "4",
            "checkin_from": "08:00", "checkin_to": "20:00"}
    viewer = app.test_client()
    vtoken = login(viewer, "viewer")
    assert 'id="watch-state"' in viewer.get("/wearers/7").get_data(as_text=True)
    assert viewer.post("/wearers/7/watch", data={"csrf_token": vtoken, **form}).status_code == 403
    assert _row(app) == (1, None, None, None, None, None)
    c = app.test_client()
    token = login(c, "coordinator")
    assert c.post("/wearers/7/watch", data={"csrf_token": token, **form}).status_code == 302
    assert _row(app) == (1, None, 7200.0, 14400.0, "08:00", "20:00")
    page = c.get("/wearers/7").get_data(as_text=True)
    assert "Next check-in due" in page and 'name="silent_alarm_min" type="number" min="0" max="10080" step="any" ' \
                                          'value="120"' in page
    with sqlite3.connect(app.station_config.database_path) as db:
        [(actor, detail)] = db.execute("SELECT actor, detail FROM events WHERE action='watch changed'").fetchall()
    assert actor == "console:coordinator" and "check-ins every 4 h from 08:00 to 20:00" in detail
    # Unticked: travelling beyond the mesh, her silence is nobody's alarm; her check-ins stay.
    c.post("/wearers/7/watch", data={"csrf_token": token, **{k: v for k, v in form.items() if k != "watch"}})
    assert _row(app)[0] == 0 and _row(app)[3] == 14400.0


def test_a_watch_that_cannot_work_is_refused_and_nothing_changes(app):  # noqa: F811
    _amina(app)
    c = app.test_client()
    token = login(c, "coordinator")
    c.post("/wearers/7/watch", data={"csrf_token": token, "watch": "on", "checkin_every_h": "6",
                                     "checkin_from": "08:00", "checkin_to": "12:00"})
    page = c.get("/wearers/7").get_data(as_text=True)
    assert "never falls due in a window of 4 h" in page
    assert _row(app) == (1, None, None, None, None, None)


def test_a_silent_alarm_says_the_station_raised_it_not_that_she_pressed(app):  # noqa: F811
    _amina(app)
    w = Writer(app.station_config.database_path).start()
    iid = w.call(lambda db: db.execute("INSERT INTO incidents (node_num, opened_at, last_press_at, press_count, "
                                       "source, state, trust) VALUES (7, 0, 0, 0, 'silent', 'open', 'registered')"
                                       ).lastrowid)
    w.stop()
    c = app.test_client()
    login(c, "viewer")
    page = c.get(f"/alerts/{iid}").get_data(as_text=True)
    assert "raised by the station: bracelet silent" in page and "0 presses" not in page
    assert "levée par la station : bracelet silencieux" in c.get(
        f"/alerts/{iid}", headers={"Accept-Language": "fr"}).get_data(as_text=True)
