"""Bracelets registered, renamed, given PINs and retired in the console by a coordinator, never by
a viewer or a technician, with the key typed from the device (never the one the mesh announced)
and PINs only in password fields."""

from __future__ import annotations

import base64
import re
import sqlite3
import time

import pytest

from station import pins
from station.config import validate

from .test_console_security import app, login  # noqa: F401  (fixture)

KEY = base64.b64encode(bytes(range(32))).decode()
ANNOUNCED = base64.b64encode(bytes(range(1, 33))).decode()


def _heard(app):   # noqa: F811
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    w.call(lambda d: d.execute("INSERT INTO nodes (num, node_id, long_name, short_name, first_heard, last_heard, "
                               "public_key) VALUES (?, '!b5a1e00a', 'Fatou S.', 'FAT', 0, 0, ?)",
                               (0xB5A1E00A, ANNOUNCED)))
    w.stop()


def _row(app):   # noqa: F811
    return sqlite3.connect(app.station_config.database_path).execute(
        "SELECT label, public_key, cancel_pin_hash, duress_pin_hash FROM bracelets WHERE node_num=?",
        (0xB5A1E00A,)).fetchone()


def _form(token, **changes):
    return {"csrf_token": token, "node": "!b5a1e00a", "label": "Fatou S.", "public_key": KEY, "cancel_pin": "246813",
            "cancel_pin_again": "246813", "duress_pin": "135792", "duress_pin_again": "135792", **changes}


def test_a_coordinator_registers_a_heard_node_with_the_key_from_the_device_and_pins(app):   # noqa: F811
    _heard(app)
    c = app.test_client()
    token = login(c, "coordinator")
    nodes = c.get("/nodes").get_data(as_text=True)
    assert 'href="/wearers/register?node=%21b5a1e00a"' in nodes or 'href="/wearers/register?node=!b5a1e00a"' in nodes
    page = c.get("/wearers/register?node=!b5a1e00a").get_data(as_text=True)
    # The announced key is shown to compare, never filled in for her.
    assert ANNOUNCED in page and f'value="{ANNOUNCED}"' not in page
    assert re.findall(r'<input name="(\w+_pin(?:_again)?)" type="(\w+)"', page) == [
        ("cancel_pin", "password"), ("cancel_pin_again", "password"), ("duress_pin", "password"),
        ("duress_pin_again", "password")]
    r = c.post("/wearers/register", data=_form(token), follow_redirects=True)
    assert "Fatou S. registered" in r.get_data(as_text=True)
    label, key, cancel, duress = _row(app)
    assert (label, key) == ("Fatou S.", KEY)
    policy = pins.PinPolicy.of(app.station_config)
    assert policy.key.verify("246813", cancel) and policy.key.verify("135792", duress)


@pytest.mark.parametrize("changes, says", [
    ({"public_key": ""}, "registered with its public key"),
    ({"cancel_pin_again": "246814"}, "typed twice the same"),
    ({"duress_pin": "246813", "duress_pin_again": "246813"}, "must differ"),
    ({"label": ""}, "1 to 64 characters"),
])
def test_a_registration_with_a_mistake_is_refused_and_stores_nothing(app, changes, says):   # noqa: F811
    c = app.test_client()
    token = login(c, "coordinator")
    r = c.post("/wearers/register", data=_form(token, **changes), follow_redirects=True)
    assert says in r.get_data(as_text=True) and _row(app) is None


@pytest.mark.parametrize("role", ["viewer", "technician"])
def test_viewers_and_technicians_cannot_register_or_retire(app, role):   # noqa: F811
    c = app.test_client()
    token = login(c, role)
    assert c.post("/wearers/register", data=_form(token)).status_code == 403
    assert c.post("/wearers/1/retire", data={"csrf_token": token, "confirm": "yes"}).status_code == 403
    assert "register-link" not in c.get("/wearers/").get_data(as_text=True)


def test_a_coordinator_renames_sets_pins_and_retires_a_bracelet(app):   # noqa: F811
    c = app.test_client()
    token = login(c, "coordinator")
    c.post("/wearers/register", data=_form(token, cancel_pin="", cancel_pin_again="", duress_pin="",
                                          duress_pin_again=""))
    assert _row(app)[2:] == (None, None)
    num = 0xB5A1E00A
    c.post(f"/wearers/{num}/label", data={"csrf_token": token, "label": "F. S."})
    c.post(f"/wearers/{num}/pins", data={"csrf_token": token, "cancel_pin": "864213", "cancel_pin_again": "864213",
                                          "duress_pin": "975313", "duress_pin_again": "975313"})
    label, _, cancel, duress = _row(app)
    assert label == "F. S." and cancel and duress
    # Retiring needs the box ticked.
    c.post(f"/wearers/{num}/retire", data={"csrf_token": token})
    assert _row(app) is not None
    c.post(f"/wearers/{num}/retire", data={"csrf_token": token, "confirm": "yes"})
    assert _row(app) is None
    assert '<td>F. S.</td><td>!b5a1e00a</td>' in c.get("/wearers/").get_data(as_text=True)    # remembered
    events = sqlite3.connect(app.station_config.database_path).execute(
        "SELECT action, detail FROM events WHERE action IN ('bracelet renamed', 'PINs set', 'bracelet retired') "
        "ORDER BY id").fetchall()
    assert [e[0] for e in events] == ["bracelet renamed", "PINs set", "bracelet retired"]
    assert "864213" not in str(events) and "975313" not in str(events)      # PINs never in the log


def test_the_pin_key_is_the_stations_so_the_daemon_checks_what_the_console_set(app, tmp_path):   # noqa: F811
    c = app.test_client()
    token = login(c, "coordinator")
    c.post("/wearers/register", data=_form(token))
    cfg = validate({"storage": {"database": str(app.station_config.database_path)}}, None, tmp_path)
    policy = pins.PinPolicy.of(cfg, create=False)
    assert policy.key.verify("246813", _row(app)[2])


def test_a_retired_wearers_past_alert_keeps_her_label_whoever_holds_the_bracelet_next(app):   # noqa: F811
    """Maria's alert from last month stays Maria's after her bracelet is retired and handed on:
    neither the name its next holder types into the node nor the next wearer's label replaces it."""
    from station.storage.writer import Writer
    c = app.test_client()
    token = login(c, "coordinator")
    c.post("/wearers/register", data=_form(token))
    num = 0xB5A1E00A
    c.post(f"/wearers/{num}/label", data={"csrf_token": token, "label": "Maria"})
    w = Writer(app.station_config.database_path).start()
    try:
        iid = w.call(lambda db: db.execute(
            "INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust) "
            "VALUES (?, ?, ?, 'alert_app', 'resolved', 'registered')", (num, time.time(), time.time())).lastrowid)
    finally:
        w.stop()
    c.post(f"/wearers/{num}/retire", data={"csrf_token": token, "confirm": "yes"})
    w = Writer(app.station_config.database_path).start()
    try:
        w.call(lambda db: db.execute("INSERT OR REPLACE INTO nodes (num, node_id, long_name, short_name, first_heard, "
                                     "last_heard) VALUES (?, ?, 'Stranger', 'STR', 0, 0)", (num, f"!{num:08x}")))
    finally:
        w.stop()
    c.post("/wearers/register", data=_form(token, label="Ana"))          # handed on to Ana
    assert "Ana" in c.get("/wearers/").get_data(as_text=True)
    page = c.get(f"/alerts/{iid}").get_data(as_text=True)
    assert f"<h1>Alert {iid}: Maria</h1>" in page and "Stranger" not in page
    assert "Maria" in c.get("/?state=resolved").get_data(as_text=True)
