"""What a coordinator needs from the console in an emergency, with Flask's test client: the
station's state on every page, resolved alerts and filters reachable, the exact text a post will
carry shown before approval, no action offered that her role or the alert's state forbids, and a
duress alert that only closes with a confirmation."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import pytest

from station import runtime
from station.storage.writer import Writer

from .test_console_security import app, login  # noqa: F401  (fixture)

RUNNING = {"station": {"phase": "running", "db_check": "ok"}, "radio": {"status": "connected", "virtual": False},
           "database": {"state": "ok"}, "relay": {"enabled": False}, "gps": {"enabled": False}}


def _write(app, sql: str, params: tuple = ()) -> None:   # noqa: F811
    w = Writer(app.station_config.database_path).start()
    w.call(lambda d: d.execute(sql, params))
    w.stop()


def _status(app, **changes):   # noqa: F811
    snap = json.loads(json.dumps(RUNNING))
    for key, value in changes.items():
        snap[key] = {**snap[key], **value}
    runtime.write_status(app.station_config.database_path, snap)


def _banner(client) -> dict[str, str]:
    return {p["key"]: p["level"] for p in client.get("/api/state").get_json()["banner"]}


def test_a_station_whose_daemon_never_ran_says_so_on_every_page(app):   # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    assert _banner(c) == {"daemon": "critical"}
    for page in ("/", "/alerts/1", "/wearers/", "/nodes", "/health"):
        html = c.get(page).get_data(as_text=True)
        assert 'class="banner critical" data-key="daemon"' in html, page


def test_a_running_station_shows_no_banner_and_a_dead_one_is_seen_from_its_silence(app, monkeypatch):   # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    _status(app)
    assert _banner(c) == {}
    # kill -9 leaves a snapshot saying "running": its age tells the truth.
    written = runtime.read_status(app.station_config.database_path)[0]["written"]["monotonic"]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: written + 7)
    assert _banner(c) == {"daemon": "critical"}
    assert "has not reported for 7 s" in c.get("/api/state").get_json()["banner"][0]["text"]


@pytest.mark.parametrize("changes, key, level", [
    ({"radio": {"status": "down", "error": "no such device /dev/ttyUSB0"}}, "radio", "critical"),
    ({"radio": {"status": "lent"}}, "radio-lent", "warning"),
    ({"radio": {"virtual": True}}, "virtual-radio", "warning"),
    ({"database": {"state": "unavailable", "why": "disk full", "for_s": 12}}, "database", "critical"),
    ({"gps": {"enabled": True, "connected": False, "error": "unplugged"}}, "gps", "warning"),
    ({"relay": {"enabled": True, "online": False, "outbox": {"ready": 2}}}, "offline", "warning"),
])
def test_each_degraded_part_of_the_station_has_its_line_with_a_remedy(app, changes, key, level):   # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    _status(app, **changes)
    found = c.get("/api/state").get_json()["banner"]
    assert [(p["key"], p["level"]) for p in found] == [(key, level)]
    assert found[0]["remedy"]


def test_a_post_that_may_have_gone_out_is_on_the_banner_until_settled(app):   # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    _status(app, relay={"enabled": True, "online": True})
    _write(app, "INSERT INTO outbox (incident_id, destination, kind, seq, priority, state, text, has_link, "
                "idempotency_key, created_at, updated_at) VALUES (1, 'x', 'alert', 0, 0, 'uncertain', 'ALERT', 0, "
                "'k', 0, 0)")
    assert _banner(c) == {"uncertain-posts": "warning"}
    runtime.status_path(app.station_config.database_path).unlink()
    assert _banner(c) == {"daemon": "critical", "uncertain-posts": "warning"}      # with the daemon down too


def test_resolved_alerts_and_filters_are_reachable_from_the_list(app):   # noqa: F811
    _write(app, "UPDATE incidents SET state='resolved', resolution='false_alarm' WHERE id=2")
    c = app.test_client()
    login(c, "viewer")

    def shown(query: str) -> set[int]:
        html = c.get("/" + query).get_data(as_text=True)
        return {int(x) for x in re.findall(r'href="/alerts/(\d+)"', html)}
    everyone = shown("")
    assert 2 not in everyone and 1 in everyone
    assert shown("?state=resolved") == {2}
    assert 2 in shown("?state=all")
    assert shown("?wearer=!00000003") == {3}
    assert shown("?trust=registered") == set()
    assert shown("?since=2000-01-01&until=2000-01-02") == set()
    assert shown("?wearer=not-a-node") == everyone           # a wrong filter narrows nothing, breaks nothing


def test_a_coordinator_sees_the_exact_text_before_she_approves(app):   # noqa: F811
    _write(app, "INSERT INTO outbox (incident_id, destination, kind, seq, priority, state, reason, text, has_link, "
                "idempotency_key, created_at, updated_at) VALUES (1, 'partners', 'alert', 0, 0, 'held', "
                "'awaiting approval', 'ALERT: Amina D. needs help near Medina (10 km)', 0, 'k1', 0, 0)")
    c = app.test_client()
    token = login(c, "coordinator")
    html = c.get("/alerts/1").get_data(as_text=True)
    assert "ALERT: Amina D. needs help near Medina (10 km)" in html and 'id="approve"' in html
    r = c.post("/alerts/1/approve", headers={"X-CSRF-Token": token}, follow_redirects=True)
    assert "1 post leaves as shown" in r.get_data(as_text=True)
    # Nothing held on alert 2: no approve button, and an approval says nothing will be published.
    assert 'id="approve"' not in c.get("/alerts/2").get_data(as_text=True)
    r = c.post("/alerts/2/approve", headers={"X-CSRF-Token": token}, follow_redirects=True)
    assert "nothing is waiting to be published" in r.get_data(as_text=True)


@pytest.mark.parametrize("role, shown, hidden", [
    ("viewer", [], ['id="ack"', 'id="resolve"', 'id="add-note"', 'id="approve"']),
    ("technician", [], ['id="ack"', 'id="resolve"', 'id="add-note"']),
    ("coordinator", ['id="ack"', 'id="resolve"', 'id="add-note"'], []),
])
def test_each_role_is_offered_only_the_actions_it_may_take(app, role, shown, hidden):   # noqa: F811
    c = app.test_client()
    login(c, role)
    html = c.get("/alerts/1").get_data(as_text=True)
    assert all(s in html for s in shown) and not any(h in html for h in hidden)


def test_an_acknowledged_alert_offers_no_acknowledge_and_a_resolved_one_no_resolve(app):   # noqa: F811
    _write(app, "UPDATE incidents SET state='acknowledged' WHERE id=1")
    _write(app, "UPDATE incidents SET state='resolved', resolution='safe' WHERE id=2")
    c = app.test_client()
    login(c, "coordinator")
    one, two = c.get("/alerts/1").get_data(as_text=True), c.get("/alerts/2").get_data(as_text=True)
    assert 'id="ack"' not in one and 'id="resolve"' in one
    assert 'id="resolve"' not in two


def test_a_duress_alert_closes_only_with_the_confirmation_and_a_reason(app):   # noqa: F811
    _write(app, "UPDATE incidents SET duress=1, trust='registered' WHERE id=1")
    c = app.test_client()
    token = login(c, "coordinator")
    html = c.get("/alerts/1").get_data(as_text=True)
    assert '<option value="" selected>' in html and 'id="confirm-duress"' in html
    for form in ({"resolution": "safe", "reason": "she called"},
                 {"resolution": "safe", "confirm": "duress"}):
        c.post("/alerts/1/resolve", data={**form, "csrf_token": token})
        assert c.get("/api/alerts/1").get_json()["state"] == "open", form
    c.post("/alerts/1/resolve", data={"resolution": "safe", "reason": "she called", "confirm": "duress",
                                      "csrf_token": token})
    assert c.get("/api/alerts/1").get_json()["state"] == "resolved"


def test_the_state_poll_lists_the_alerts_the_alarm_rings_for(app):   # noqa: F811
    _write(app, "UPDATE incidents SET state='acknowledged' WHERE id=1")
    _write(app, "UPDATE incidents SET duress=1 WHERE id=3")
    c = app.test_client()
    login(c, "viewer")
    state = c.get("/api/state").get_json()
    assert 1 not in state["open"] and {2, 3} <= set(state["open"]) and state["duress"] == [3]
    assert state["last_event"] >= 1
    # The page computes ages on the station's clock, not the browser's (which may be wrong).
    stamped = float(re.search(r'data-now="([0-9.]+)"', c.get("/").get_data(as_text=True)).group(1))
    assert abs(stamped - time.time()) < 60


def _uncertain_post(app, state="uncertain"):   # noqa: F811
    _write(app, "INSERT INTO outbox (incident_id, destination, kind, seq, priority, state, reason, text, has_link, "
                "idempotency_key, created_at, updated_at) VALUES (1, 'x', 'alert', 0, 0, ?, 'timeout after sending', "
                "'ALERT near Medina', 0, 'k9', 0, 0)", (state,))
    return sqlite3.connect(app.station_config.database_path).execute("SELECT MAX(id) FROM outbox").fetchone()[0]


@pytest.mark.parametrize("action, form, state", [
    ("posted", {"url": "https://x.example/status/1"}, "sent"),
    ("resend", {}, "ready"),
    ("not-posted", {}, "failed"),
])
def test_a_coordinator_settles_a_post_that_may_have_gone_out(app, action, form, state):   # noqa: F811
    row = _uncertain_post(app)
    c = app.test_client()
    token = login(c, "coordinator")
    assert "Look at x: is this text there?" in c.get("/alerts/1").get_data(as_text=True)
    c.post(f"/alerts/1/posts/{row}/{action}", data={"csrf_token": token, **form})
    got = sqlite3.connect(app.station_config.database_path).execute("SELECT state, url FROM outbox WHERE id=?",
                                                                     (row,)).fetchone()
    assert got[0] == state
    if action == "posted":
        assert got[1] == "https://x.example/status/1"
    assert f"/alerts/1/posts/{row}/" not in c.get("/alerts/1").get_data(as_text=True) or state == "failed"


def test_a_settled_post_address_cannot_smuggle_a_script_and_a_viewer_cannot_settle(app):   # noqa: F811
    row = _uncertain_post(app)
    c = app.test_client()
    token = login(c, "coordinator")
    c.post(f"/alerts/1/posts/{row}/posted", data={"csrf_token": token, "url": "javascript:alert(1)"})
    assert sqlite3.connect(app.station_config.database_path).execute(
        "SELECT state FROM outbox WHERE id=?", (row,)).fetchone()[0] == "uncertain"
    v = app.test_client()
    t = login(v, "viewer")
    assert v.post(f"/alerts/1/posts/{row}/posted", data={"csrf_token": t}).status_code == 403
    assert "/posts/" not in v.get("/alerts/1").get_data(as_text=True)


@pytest.mark.parametrize("role, sees", [("viewer", False), ("technician", False), ("coordinator", True),
                                        ("admin", True)])
def test_only_the_roles_that_handle_consent_see_a_wearers_real_name(app, role, sees):   # noqa: F811
    _write(app, "INSERT INTO bracelets (node_num, label, added_at, real_name) VALUES (1, 'Amina D.', 0, 'Amina Diallo')")
    c = app.test_client()
    login(c, role)
    pages = [c.get("/api/bracelets").get_data(as_text=True), c.get("/wearers/").get_data(as_text=True),
             c.get("/wearers/1").get_data(as_text=True)]
    assert all(("Amina Diallo" in p) == sees for p in pages[:1] + pages[2:])
    assert "Amina Diallo" not in pages[1] or sees


def test_a_silent_bracelet_and_a_low_battery_are_flagged_before_they_become_an_emergency(app):   # noqa: F811
    """A bracelet switched off or taken from its wearer sends nothing: the office sees it."""
    now = time.time()
    for num, label, heard, level, external in ((11, "Amina D.", now - 60, 80, 0), (12, "Bashir K.", now - 3 * 3600, 90, 0),
                                               (13, "Chen L.", now - 60, 12, 0), (14, "Dara N.", now - 60, None, 1)):
        _write(app, "INSERT INTO nodes (num, node_id, long_name, short_name, first_heard, last_heard, battery_level, "
                    "external_power) VALUES (?, ?, ?, 'X', 0, ?, ?, ?)", (num, f"!{num:08x}", label, heard, level, external))
        _write(app, "INSERT INTO bracelets (node_num, label, added_at) VALUES (?, ?, 0)", (num, label))
    c = app.test_client()
    login(c, "viewer")
    found = {p["key"]: p["text"] for p in c.get("/api/state").get_json()["banner"]}
    assert found["silent-bracelets"] == "Silent bracelets: Bashir K."
    assert found["low-battery"] == "Low battery: Chen L. (12%)"
    page = c.get("/wearers/").get_data(as_text=True)
    assert page.count('class="warn silent"') == 1 and page.count('class="warn low-battery"') == 1
    assert "external power" in page
