"""Exports for evidence and the nodes and health pages."""

from __future__ import annotations

import csv
import io
import json
import time
import xml.dom.minidom

import pytest

from web.exports import cell

from .test_console_security import XSS, app, login, tags  # noqa: F401  (fixture)

FORMULAS = ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\t=1"]


@pytest.mark.parametrize("text", FORMULAS)
def test_csv_cells_never_start_a_formula(text):
    assert cell(text).startswith("'")


@pytest.mark.parametrize("value", [-17.4441, "-17.4441", 14.69, "plain text", None])
def test_numbers_and_plain_text_are_left_alone(value):
    assert cell(value) == ("" if value is None else str(value))


@pytest.fixture
def with_positions(app):   # noqa: F811
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    now = time.time()

    def add(db):
        db.execute("UPDATE nodes SET long_name=? WHERE num=1", (FORMULAS[0],))
        for i in range(3):
            db.execute("INSERT INTO positions (node_num, source, received_at, lat, lon) VALUES (1, 'position_app', ?, ?, ?)",
                       (now + i, 14.69 + i / 100, -17.44))
    w.call(add)
    w.stop()
    return app


def test_position_exports_in_three_formats(with_positions):
    c = with_positions.test_client()
    login(c, "coordinator")
    rows = list(csv.reader(io.StringIO(c.get("/exports/positions.csv?incident=1").get_data(as_text=True))))
    assert rows[0][:5] == ["received_at", "node", "name", "lat", "lon"] and len(rows) == 4
    assert rows[1][2].startswith("'=HYPERLINK") and rows[1][4] == "-17.44"
    geo = json.loads(c.get("/exports/positions.geojson?incident=1").get_data(as_text=True))
    assert geo["type"] == "FeatureCollection" and geo["features"][0]["geometry"]["coordinates"] == [-17.44, 14.69]
    kml = c.get("/exports/positions.kml?incident=1").get_data(as_text=True)
    doc = xml.dom.minidom.parseString(kml)
    assert len(doc.getElementsByTagName("Placemark")) == 3
    events = list(csv.reader(io.StringIO(c.get("/exports/events.csv?incident=1").get_data(as_text=True))))
    assert events[1][2] == "alert opened"


def test_exports_with_precise_positions_need_more_than_a_viewer(with_positions):
    c = with_positions.test_client()
    login(c, "viewer")
    assert c.get("/exports/positions.csv?incident=1").status_code == 403


def test_kml_escapes_hostile_names(app):   # noqa: F811
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    w.call(lambda db: db.execute("INSERT INTO positions (node_num, source, received_at, lat, lon) "
                                 "VALUES (2, 'nmea', ?, 1.0, 2.0)", (time.time(),)))
    w.stop()
    c = app.test_client()
    login(c, "admin")
    kml = c.get("/exports/positions.kml?from=0").get_data(as_text=True)
    xml.dom.minidom.parseString(kml)       # still well-formed with "<img ...>" in a name
    assert "<img" not in kml


def test_nodes_and_health_pages_render_and_stay_inert(app):   # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/nodes").get_data(as_text=True)
    assert c.get("/nodes").status_code == 200
    assert not [t for t, _ in tags(page) if t in ("img", "svg", "iframe")]
    health = c.get("/health")
    assert health.status_code == 200
    text = health.get_data(as_text=True)
    for label in ("Radio link", "GPS", "Clock", "Internet", "Queue", "Database", "CPU temperature", "power",
                  "uptime", "disk free", "versions"):
        assert label in text
    # No daemon has written a snapshot: the queue is "?", not blank; an empty outbox says so.
    assert "<td>? waiting to be stored</td>" in text and "<th>Outbox</th><td>empty</td>" in text
    assert "{}" not in text


def test_health_shows_the_queue_and_the_outbox_by_state(app):   # noqa: F811
    from station import runtime
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    runtime.write_status(app.station_config.database_path, {"ingest": {"queue": 3}})
    w.call(lambda db: db.execute("INSERT INTO outbox (incident_id, destination, kind, state, priority, created_at, "
                                 "updated_at) VALUES (1, 'x', 'alert', 'held', 0, 0, 0), "
                                 "(1, 'm', 'alert', 'held', 0, 0, 0), (1, 'w', 'alert', 'sent', 0, 0, 0)"))
    w.stop()
    c = app.test_client()
    login(c, "viewer")
    text = c.get("/health").get_data(as_text=True)
    assert "<td>3 waiting to be stored</td>" in text and "2 held, 1 sent" in text
    text = c.get("/health", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "2 en attente, 1 envoyé" in text


def test_coordinator_edits_consent_and_a_viewer_cannot(app):   # noqa: F811
    import re
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    w.call(lambda db: db.execute("INSERT INTO bracelets (node_num, label, added_at) VALUES (7, 'Amina', 0)"))
    w.stop()
    viewer = app.test_client()
    vtoken = login(viewer, "viewer")
    assert "Amina" in viewer.get("/wearers/").get_data(as_text=True)
    assert viewer.post("/wearers/7", data={"csrf_token": vtoken, "publish": "at-once"}).status_code == 403
    c = app.test_client()
    token = login(c, "coordinator")
    form = {"csrf_token": token, "publish": "verified", "name_mode": "pseudonym", "precision": "city",
            "pseudonym": "Defender A", "real_name": "", "languages": "en,fr", "approvals": "2",
            "publish_after_min": "15", "map_link": "on"}
    assert c.post("/wearers/7", data=form).status_code == 302
    page = c.get("/wearers/7").get_data(as_text=True)
    assert re.search(r'<option value="verified" selected>', page) and 'value="Defender A"' in page
    import sqlite3
    with sqlite3.connect(app.station_config.database_path) as db:
        row = db.execute("SELECT publish, precision, languages, approvals, publish_after_min, map_link "
                         "FROM bracelets WHERE node_num=7").fetchone()
        actor = db.execute("SELECT actor FROM events WHERE action='consent changed'").fetchone()[0]
    assert row == ("verified", "city", '["en", "fr"]', 2, 15.0, 1) and actor == "console:coordinator"
    bad = dict(form, precision="street")
    c.post("/wearers/7", data=bad)
    assert "precision must be one of" in c.get("/wearers/7").get_data(as_text=True)


def test_coordinators_add_notes_to_the_timeline_and_see_each_fix(with_positions):
    c = with_positions.test_client()
    token = login(c, "coordinator")
    assert c.post("/alerts/1/note", data={"csrf_token": token, "note": "Called her brother: no answer"}).status_code == 302
    data = c.get("/api/alerts/1").get_json()
    assert [(e["actor"], e["action"], e["detail"]) for e in data["events"]][-1] == \
        ("console:coordinator", "note", "Called her brother: no answer")
    page = c.get("/alerts/1").get_data(as_text=True)
    assert "Called her brother" in page and page.count("<td>position from the bracelet</td>") == 3
    c.post("/alerts/1/note", data={"csrf_token": token, "note": "   "})
    assert "a note is 1 to 2000 characters" in c.get("/alerts/1").get_data(as_text=True)


def test_the_bracelets_api_shows_what_the_wearers_page_shows_and_never_a_pin_hash(app):   # noqa: F811
    from station import registry
    from station.pins import PinKey, PinPolicy
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    hashes = PinPolicy(PinKey(bytes(32))).hash_pair("123456", "999999")
    w.call(lambda db: registry.add(db, 7, "Amina", time.time(), public_key="A" * 43 + "=", pin_hashes=hashes))
    w.call(lambda db: registry.set_consent(db, 7, {"publish": "verified", "precision": "city"}, "test", time.time()))
    w.stop()
    c = app.test_client()
    login(c, "viewer")
    r = c.get("/api/bracelets")
    [row] = r.get_json()
    assert (row["label"], row["node_id"], row["publish"], row["precision"]) == ("Amina", "!00000007", "verified", "city")
    assert row["has_cancel_pin"] is True and row["has_duress_pin"] is True and "last_heard" in row
    assert not [k for k in row if "hash" in k] and "scrypt" not in r.get_data(as_text=True)
    page = c.get("/wearers/7").get_data(as_text=True)
    assert "cancel PIN: set · duress PIN: set" in page


def test_exports_carry_iso_times_with_the_offset_and_are_named_after_the_alert(with_positions):
    """A partner or a court reads the same instant whatever their zone; six downloads do not
    all arrive as positions.csv."""
    import datetime
    c = with_positions.test_client()
    login(c, "coordinator")
    r = c.get("/exports/positions.csv?incident=1")
    assert r.headers["Content-Disposition"] == "attachment; filename=alert-1-positions.csv"
    first = list(csv.reader(io.StringIO(r.get_data(as_text=True))))[1][0]
    parsed = datetime.datetime.fromisoformat(first)
    assert parsed.tzinfo is not None and abs(parsed.timestamp() - time.time()) < 3600
    geo = json.loads(c.get("/exports/positions.geojson?incident=1").get_data(as_text=True))
    assert datetime.datetime.fromisoformat(geo["features"][0]["properties"]["received_at"]).tzinfo is not None
    kml = c.get("/exports/positions.kml?incident=1")
    assert "alert-1-positions.kml" in kml.headers["Content-Disposition"] and "<TimeStamp><when>" in kml.get_data(as_text=True)
    events = c.get("/exports/events.csv?incident=1")
    assert datetime.datetime.fromisoformat(list(csv.reader(io.StringIO(events.get_data(as_text=True))))[1][0]).tzinfo


def test_evidence_exports_name_a_position_after_the_wearer_who_carried_the_bracelet_then(with_positions):
    """Positions exported for a case stay Maria's after her bracelet goes to Ana: evidence must
    not put Ana where Maria was."""
    from station import registry
    from station.storage.writer import Writer
    w = Writer(with_positions.station_config.database_path).start()
    try:
        w.call(lambda db: db.execute("INSERT INTO bracelets (node_num, label, public_key, pinned_at, added_at) "
                                     "VALUES (1, 'Maria', 'k', 0, 0)"))
        w.call(lambda db: registry.retire(db, 1, "test", time.time() + 10))
        w.call(lambda db: db.execute("INSERT INTO bracelets (node_num, label, public_key, pinned_at, added_at) "
                                     "VALUES (1, 'Ana', 'k', ?, ?)", (time.time() + 11, time.time() + 11)))
    finally:
        w.stop()
    c = with_positions.test_client()
    login(c, "coordinator")
    rows = list(csv.reader(io.StringIO(c.get("/exports/positions.csv?incident=1").get_data(as_text=True))))
    assert [r[2] for r in rows[1:]] == ["Maria"] * 3


def test_the_coordinator_sees_who_beyond_the_room_was_told_and_whether_it_reached_them(app):  # noqa: F811
    """Her alert's page says the chain's reference and state, and each message with its channel
    and delivery state, failures with their reason (what she needs to decide to phone someone)."""
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    now = time.time()

    def add(db):
        db.execute("INSERT INTO escalations (incident_id, kind, ref, started_at, next_step, next_at, state) "
                   "VALUES (1, 'alert', '1KX', ?, 2, ?, 'running')", (now, now + 300))
        for step, who, channel, address, state, reason in [
                (0, "Maria", "sms", "+221770000001", "delivered", None),
                (1, "Omar", "email", "omar@ngo.example", "failed", "the certificate of mail.ngo is not trusted")]:
            db.execute("INSERT INTO notifications (incident_id, step, responder, channel, address, text, state, "
                       "created_at, reason) VALUES (1,?,?,?,?,'SOS',?,?,?)", (step, who, channel, address, state, now,
                                                                             reason))
    w.call(add)
    w.stop()
    c = app.test_client()
    login(c, "coordinator")
    page = c.get("/alerts/1").get_data(as_text=True)
    section = page[page.index('id="escalation"'):page.index("</section>", page.index('id="escalation"'))]
    assert "1KX" in section and "running" in section
    assert "Maria" in section and "+221770000001" in section and "delivered" in section
    assert "Omar" in section and "failed" in section and "the certificate of mail.ngo is not trusted" in section
    # Without a chain (escalation off), no empty section.
    assert 'id="escalation"' not in c.get("/alerts/2").get_data(as_text=True)
