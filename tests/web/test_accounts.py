"""Console accounts under attack and in an administrator's hands: a colleague (or anyone on the
office LAN) typing wrong passwords locks out only their own device; a copied cookie dies at
logout, on a password change and when the account is disabled; `next` never leads off the
console; a fresh station is set up in the browser with the code only the station shows; a locked
database is a clear 503, never a 500."""

from __future__ import annotations

import re
import sqlite3

import pytest
from click.testing import CliRunner

from station import users
from station.cli import cli

from .test_console_security import PASSWORD, app, login  # noqa: F401  (fixture)


def _client(app, addr: str):   # noqa: F811
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = addr
    return client


def _try(client, name: str, password: str, next_: str = ""):
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    return client.post("/login" + (f"?next={next_}" if next_ else ""),
                       data={"name": name, "password": password, "csrf_token": token})


def test_wrong_passwords_from_one_device_do_not_lock_the_coordinator_out_of_hers(app):   # noqa: F811
    attacker, coordinator = _client(app, "10.0.0.66"), _client(app, "10.0.0.12")
    for _ in range(users.MAX_FAILED):
        assert _try(attacker, "coordinator", "not her password").status_code == 401
    assert _try(attacker, "coordinator", PASSWORD).status_code == 401      # that device waits
    assert _try(coordinator, "coordinator", PASSWORD).status_code == 302   # she does not


def test_an_administrator_lifts_a_lock_in_the_browser(app):   # noqa: F811
    phone = _client(app, "10.0.0.12")
    for _ in range(users.MAX_FAILED):
        _try(phone, "coordinator", "typo typo")
    admin = app.test_client()
    token = login(admin, "admin")
    page = admin.get("/users/").get_data(as_text=True)
    assert "locked out on 1 device<" in page
    admin.post("/users/coordinator/unlock", data={"csrf_token": token})
    assert _try(phone, "coordinator", PASSWORD).status_code == 302


def _stolen_cookie_works(app, thief_cookie: str) -> bool:   # noqa: F811
    thief = app.test_client()
    thief.set_cookie("station_session", thief_cookie)
    return thief.get("/").status_code == 200


@pytest.mark.parametrize("how", ["logout", "password", "disable", "revoke"])
def test_a_copied_session_cookie_stops_working(app, how):   # noqa: F811
    victim = app.test_client()
    token = login(victim, "coordinator")
    cookie = victim.get_cookie("station_session").value
    assert _stolen_cookie_works(app, cookie)
    if how == "logout":
        victim.post("/logout", data={"csrf_token": token})
    else:
        admin = app.test_client()
        admin_token = login(admin, "admin")
        admin.post(f"/users/coordinator/{how}", data={"csrf_token": admin_token, "password": "a brand new secret",
                                                       "again": "a brand new secret"})
    assert not _stolen_cookie_works(app, cookie)


@pytest.mark.parametrize("target", ["/%09/evil.example/phish", "//evil.example/x", "/%5Cevil.example",
                                    "https://evil.example/", "/%0d%0aLocation:%20//evil.example", "/\\\\evil.example"])
def test_login_never_sends_anyone_off_the_console(app, target):   # noqa: F811
    r = _try(app.test_client(), "viewer", PASSWORD, target)
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_login_returns_to_the_page_that_asked_for_it(app):   # noqa: F811
    r = _try(app.test_client(), "viewer", PASSWORD, "/alerts/2")
    assert r.headers["Location"] == "/alerts/2"


def test_the_last_administrator_cannot_be_demoted_or_disabled(app):   # noqa: F811
    admin = app.test_client()
    token = login(admin, "admin")
    for action, form in (("role", {"role": "viewer"}), ("disable", {})):
        r = admin.post(f"/users/admin/{action}", data={"csrf_token": token, **form}, follow_redirects=True)
        assert "last administrator" in r.get_data(as_text=True)
    assert users.get(sqlite3.connect(app.station_config.database_path), "admin") == users.User("admin", "admin")


def test_an_administrator_adds_and_demotes_a_user_in_the_browser_and_others_cannot(app):   # noqa: F811
    admin = app.test_client()
    token = login(admin, "admin")
    form = {"csrf_token": token, "name": "fatou", "role": "coordinator", "password": "a long enough one",
            "again": "a long enough one"}
    assert "user fatou added" in admin.post("/users/add", data=form, follow_redirects=True).get_data(as_text=True)
    admin.post("/users/fatou/role", data={"csrf_token": token, "role": "viewer"})
    db = sqlite3.connect(app.station_config.database_path)
    assert users.get(db, "fatou") == users.User("fatou", "viewer")
    for role in ("coordinator", "technician", "viewer"):
        c = app.test_client()
        t = login(c, role)
        assert c.get("/users/").status_code == 403
        assert c.post("/users/add", data={**form, "csrf_token": t, "name": "mallory"}).status_code == 403


@pytest.fixture
def fresh(tmp_path):
    from station.config import validate
    from web import create_app
    a = create_app(validate({"storage": {"database": str(tmp_path / "s.db")}}, None, tmp_path))
    a.config["TESTING"] = True
    return a


def test_a_fresh_station_is_set_up_in_the_browser_with_the_code_only_the_station_shows(fresh):
    from web import first_run
    c = fresh.test_client()
    r = c.get("/login")
    assert r.status_code == 302 and r.headers["Location"] == "/setup"
    page = c.get("/setup").get_data(as_text=True)
    assert str(first_run.code_path(fresh.station_config)) in page and "Wrong name or password" not in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "name": "amadou", "password": "the first admin", "again": "the first admin"}
    # Someone on the LAN without the code gets nothing.
    assert c.post("/setup", data={**form, "code": "AAAA-AAAA"}).status_code == 400
    code = first_run.code_path(fresh.station_config).read_text().strip()
    r = c.post("/setup", data={**form, "code": code.lower()})
    assert r.status_code == 302 and c.get("/users/").status_code == 200
    assert not first_run.code_path(fresh.station_config).exists()
    # Once set up, the page is gone, even with the old code.
    other = fresh.test_client()
    assert other.get("/setup").headers["Location"] == "/login"
    assert other.post("/setup", data={**form, "name": "late", "code": code}).status_code in (302, 403)
    assert [u["name"] for u in users.accounts(sqlite3.connect(fresh.station_config.database_path), 0)] == ["amadou"]


def test_a_locked_database_is_a_clear_503_and_nothing_changes(app):   # noqa: F811
    c = app.test_client()
    token = login(c, "coordinator")
    blocker = sqlite3.connect(app.station_config.database_path)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        r = c.post("/alerts/1/ack", data={"csrf_token": token})
    finally:
        blocker.rollback()
        blocker.close()
    assert r.status_code == 503
    assert "nothing was changed" in r.get_data(as_text=True)
    assert c.get("/api/alerts/1").get_json()["state"] == "open"


def test_a_technician_manages_accounts_from_the_command_line_without_a_password_in_argv(app, tmp_path):   # noqa: F811
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[storage]\ndatabase = "{app.station_config.database_path}"\n[gpio]\nenabled = false\n')

    def run(*args, input=None):
        r = CliRunner().invoke(cli, ["--config", str(cfg), "users", *args], input=input, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output
    for _ in range(users.MAX_FAILED):
        _try(app.test_client(), "viewer", "wrong password")
    assert "locked for 1 client(s)" in run("list")
    run("unlock", "viewer")
    run("passwd", "viewer", "--password-stdin", input="another long secret\n")
    assert _try(app.test_client(), "viewer", "another long secret").status_code == 302
    run("role", "viewer", "technician")
    c = app.test_client()
    login(c, "coordinator")
    run("revoke", "coordinator")
    assert c.get("/").status_code == 302
    r = CliRunner().invoke(cli, ["--config", str(cfg), "users", "disable", "admin"])
    assert r.exit_code != 0 and "last administrator" in r.output
