"""Console security: every route needs a login (the URL map is enumerated, so a new route is
covered automatically), every state change needs the CSRF token and the right role, hostile
strings from the mesh render inert, and the pages run no inline script."""

from __future__ import annotations

import re
import sqlite3
import time
from html.parser import HTMLParser

import pytest

from station import users
from station.config import validate
from station.storage.writer import Writer
from web import create_app

PASSWORD = "correct horse battery"
XSS = [
    '<script>alert(1)</script>',
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "<svg/onload=alert(1)>",
    "'\"><iframe src=javascript:alert(1)>",
    "</title><script>alert(1)</script>",
    "{{7*7}}",
]


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "s.db"
    w = Writer(path).start()

    def seed(db):
        for role in users.ROLES:
            users.add(db, role, role, PASSWORD, time.time(), "test")
        for i, evil in enumerate(XSS, start=1):
            db.execute("INSERT INTO nodes (num, node_id, long_name, short_name, first_heard, last_heard) "
                       "VALUES (?,?,?,?,0,0)", (i, f"!{i:08x}", evil, evil[:4]))
            db.execute("INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust, message) "
                       "VALUES (?, ?, ?, 'keyword', 'open', 'unregistered', ?)", (i, time.time(), time.time(), evil))
            db.execute("INSERT INTO events (incident_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
                       (i, time.time(), "wearer", "alert opened", evil))
    w.call(seed)
    w.stop()
    a = create_app(validate({"storage": {"database": str(path)}}, None, tmp_path))
    a.config["TESTING"] = True
    return a


def login(client, name: str) -> str:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302, r.get_data(as_text=True)
    return token


def urls(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("auth.login", "auth.setup", "static"):   # public by design (tested on their own)
            continue
        url = re.sub(r"<(?:int:)?\w+>", "1", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, url


def test_every_route_refuses_an_anonymous_request(app):
    client = app.test_client()
    seen = 0
    for endpoint, method, url in urls(app):
        r = client.open(url, method=method)
        assert r.status_code in (302, 401), (endpoint, method, r.status_code)
        if r.status_code == 302:
            assert "/login" in r.headers["Location"]
        seen += 1
    assert seen >= 10      # the enumeration itself must not come up empty


def test_every_state_changing_route_needs_the_csrf_token_and_the_role(app):
    state_changing = [(e, u) for e, m, u in urls(app) if m == "POST"]
    assert len(state_changing) >= 5
    admin = app.test_client()
    token = login(admin, "admin")
    viewer = app.test_client()
    viewer_token = login(viewer, "viewer")
    for endpoint, url in state_changing:
        assert admin.post(url, data={}).status_code == 403, endpoint                         # no token
        assert admin.post(url, data={"csrf_token": "wrong"}).status_code == 403, endpoint
        if endpoint != "auth.logout":
            assert viewer.post(url, data={"csrf_token": viewer_token}).status_code == 403, endpoint
    assert admin.post("/alerts/1/ack", data={"csrf_token": token}).status_code == 302


def test_coordinator_actions_reach_the_database_with_who_did_them(app):
    c = app.test_client()
    token = login(c, "coordinator")
    assert c.post("/alerts/2/ack", headers={"X-CSRF-Token": token}).status_code == 302
    data = c.get("/api/alerts/2").get_json()
    assert data["state"] == "acknowledged" and data["acknowledged_by"] == "console:coordinator"
    assert [e["action"] for e in data["events"]][-1] == "acknowledged"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(page)
    return p.tags


def test_hostile_strings_are_inert_on_every_page_and_in_the_api(app):
    c = app.test_client()
    login(c, "viewer")
    pages = [c.get("/").get_data(as_text=True)] + [c.get(f"/alerts/{i}").get_data(as_text=True)
                                                    for i in range(1, len(XSS) + 1)]
    for page in pages:
        found = tags(page)
        assert not [t for t, _ in found if t in ("img", "svg", "iframe")]
        assert all(a.get("src") for t, a in found if t == "script")          # only our own script file
        assert not [(t, k) for t, a in found for k in a if k.startswith("on")]
        assert not [a["href"] for t, a in found if t == "a" and a.get("href", "").startswith("javascript:")]
    assert "{{7*7}}" in pages[XSS.index("{{7*7}}") + 1]                      # shown, not evaluated
    api = c.get("/api/alerts").get_json()
    assert {a["name"] for a in api} == set(XSS)       # data stays data in the API


def test_pages_carry_a_strict_csp_and_no_inline_script(app):
    c = app.test_client()
    login(c, "viewer")
    r = c.get("/")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    for page in (r.get_data(as_text=True), c.get("/alerts/1").get_data(as_text=True), c.get("/login").get_data(as_text=True)):
        assert all('src="' in tag for tag in re.findall(r"<script[^>]*>", page))
        assert not re.search(r"\son\w+=", re.sub(r"&[a-z]+;|&#\d+;", "", page.split("<main>")[0]))
        assert "http://" not in page.split("<main>")[0] and "https://" not in page.split("<main>")[0]   # no CDN


def test_login_is_throttled_and_audited(app):
    c = app.test_client()
    page = c.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    for _ in range(users.MAX_FAILED):
        assert c.post("/login", data={"name": "admin", "password": "wrong", "csrf_token": token}).status_code == 401
    r = c.post("/login", data={"name": "admin", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 401                      # locked for a while, even with the right password
    import sqlite3
    with sqlite3.connect(app.station_config.database_path) as db:
        actions = [r[0] for r in db.execute("SELECT action FROM audit WHERE actor='admin'")]
    assert actions.count("login failed") == users.MAX_FAILED and "login refused" in actions


@pytest.mark.parametrize("last_seen", [
    pytest.param(-3600, id="idle-an-hour"),
    pytest.param(+7200, id="clock-set-back-2h"),      # "seen" in the future: it must not live 2 h more
])
def test_idle_sessions_end_even_when_the_clock_was_set_back(app, last_seen):
    c = app.test_client()
    login(c, "viewer")
    assert c.get("/").status_code == 200
    with c.session_transaction() as s:
        s["seen"] = app.station_now() + last_seen
    assert c.get("/").status_code == 302


def test_login_never_redirects_off_the_console(app):
    c = app.test_client()
    page = c.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = c.post("/login?next=//evil.example/x", data={"name": "viewer", "password": PASSWORD, "csrf_token": token})
    assert r.headers["Location"] == "/"


def test_session_cookie_settings(app):
    c = app.test_client()
    login(c, "viewer")
    cookie = c.get_cookie("station_session")
    assert cookie.http_only and cookie.same_site == "Strict"


# -- someone on the office network hammering the login form ---------------------------------------
def _login_attempt(client, name: str, password: str):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token})


def test_one_client_trying_passwords_is_stopped_without_a_password_check(app):   # noqa: F811
    c = app.test_client()
    codes = [_login_attempt(c, "admin", f"guess {i}").status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    db = sqlite3.connect(app.station_config.database_path)
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action IN ('login failed', 'login refused')").fetchone()[0] == 10


@pytest.mark.parametrize("name", ["admin", "nobody-such", "locked"])
def test_every_login_costs_one_password_check_whatever_the_name(app, monkeypatch, name):   # noqa: F811
    """Unknown, real and locked accounts take the same work, so the time says nothing."""
    calls = []
    real = users.check_password
    monkeypatch.setattr(users, "check_password", lambda pw, stored: calls.append(1) or real(pw, stored))
    if name == "locked":
        db = sqlite3.connect(app.station_config.database_path)
        with db:
            db.execute("INSERT INTO users (name, role, password_hash, created_at) VALUES ('locked', 'viewer', 'x', 0)")
            db.execute("INSERT INTO login_failures (user, client, failed, failed_at, locked_until) "
                       "VALUES ('locked', '127.0.0.1', 5, 0, 4e9)")
    _login_attempt(app.test_client(), name, "wrong password")
    assert len(calls) == 1


def test_a_password_check_never_holds_the_lock_the_daemon_stores_alerts_under(app, monkeypatch):   # noqa: F811
    path = app.station_config.database_path
    free = []
    real = users.check_password

    def check(pw, stored):
        other = sqlite3.connect(path, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")      # what the daemon's writer does for an SOS
            other.execute("ROLLBACK")
            free.append(True)
        except sqlite3.OperationalError:
            free.append(False)
        finally:
            other.close()
        return real(pw, stored)
    monkeypatch.setattr(users, "check_password", check)
    assert _login_attempt(app.test_client(), "admin", PASSWORD).status_code == 302
    assert free == [True]
