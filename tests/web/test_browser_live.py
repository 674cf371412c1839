"""The console in an emergency, in a real browser (Playwright driving Debian's chromium): the
alarm a coordinator switched on stays on while alerts arrive and colleagues act, nothing she is
typing is lost to a live update, a duress alert does not close with one click, and a stopped
daemon is impossible to miss."""

from __future__ import annotations

import signal
import time

import pytest

from station import users
from station.storage.writer import Writer
from tests.conftest import wait_until
from tests.web.consoles import PASSWORD, open_alert, seed, station_console
from tests.web.test_browser import browser, station  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow
AMINA, BASHIR, CHEN = 0xB5A1E001, 0xB5A1E002, 0xB5A1E003


def _register(d, *nums):
    for num, label in nums:
        d.execute("INSERT INTO bracelets (node_num, label, added_at) VALUES (?,?,?)", (num, label, time.time()))


@pytest.fixture
def console(tmp_path):
    """`station console` alone over a database with three registered wearers, two coordinators and an admin."""
    db = tmp_path / "station.db"
    seed(db)
    w = Writer(db).start()
    w.call(lambda d: (_register(d, (AMINA, "Amina D."), (BASHIR, "Bashir K."), (CHEN, "Chen L.")),
                      users.add(d, "ana", "coordinator", PASSWORD, time.time(), "test"),
                      users.add(d, "admin", "admin", PASSWORD, time.time(), "test")))
    w.stop()
    with station_console(db) as base:
        yield base, db


def _login(browser, base, name="maria", width=1280):   # noqa: F811
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(base + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("nav")
    return page


def _alarm(page) -> dict:
    return page.evaluate("window.stationAlarm.state()")


def test_the_alarm_stays_on_across_three_new_alerts_and_a_colleagues_action(browser, console):  # noqa: F811
    base, db = console
    page = _login(browser, base)
    page.click("#sound")
    wait_until(lambda: _alarm(page)["audio"] == "running", 10, what="the alarm's sound switched on")
    # A marker on the window: a reload or a navigation would lose it.
    page.evaluate("window.sameDocument = true")
    for n, num in enumerate((AMINA, BASHIR, CHEN), start=1):
        before = _alarm(page)["rings"]
        iid = open_alert(db, num)
        wait_until(lambda: iid in _alarm(page)["open"], 15, 0.2, what=f"alert {iid} heard by the page")
        wait_until(lambda: _alarm(page)["rings"] > before, 5, 0.1, what=f"alert {iid} ringing")
        page.wait_for_selector(f"a.open-alert[href='/alerts/{iid}']")
        assert page.locator("a.open-alert").count() == n
    # A colleague acknowledges the first alert in her own session.
    ana = _login(browser, base, "ana")
    ana.goto(base + "/alerts/1")
    ana.click("#ack")
    ana.wait_for_selector("p.flash.ok")
    wait_until(lambda: 1 not in _alarm(page)["open"], 15, 0.2, what="the acknowledgement heard by maria's page")
    state = _alarm(page)
    assert state["wanted"] and state["audio"] == "running" and state["open"] == [2, 3]
    assert page.evaluate("window.sameDocument") is True
    assert "ON" in page.inner_text("#sound")
    # Navigating in the console keeps the same document, so the alarm too.
    page.click("a.open-alert[href='/alerts/2']")
    page.wait_for_selector("#ack")
    assert page.evaluate("window.sameDocument") is True and _alarm(page)["audio"] == "running"
    before = _alarm(page)["rings"]
    wait_until(lambda: _alarm(page)["rings"] > before, 10, 0.2, what="the alarm repeating while alerts are open")
    assert page.errors == [] and ana.errors == []


def test_a_duress_rings_its_own_pattern(browser, console):  # noqa: F811
    base, db = console
    page = _login(browser, base)
    page.click("#sound")
    wait_until(lambda: _alarm(page)["audio"] == "running", 10, what="the alarm's sound switched on")
    open_alert(db, AMINA, duress=True)
    wait_until(lambda: _alarm(page)["lastPattern"] == "duress", 15, 0.2, what="the duress pattern")


def test_a_half_typed_note_and_a_chosen_resolution_survive_a_live_update(browser, console):  # noqa: F811
    base, db = console
    iid = open_alert(db, AMINA)
    page = _login(browser, base)
    page.goto(f"{base}/alerts/{iid}")
    page.fill("textarea[name=note]", "called her brother, no answer ye")
    page.select_option("select[name=resolution]", "false_alarm")
    page.evaluate("window.sameDocument = true")
    # A colleague's note arrives while maria is still typing.
    ana = _login(browser, base, "ana")
    ana.goto(f"{base}/alerts/{iid}")
    ana.fill("textarea[name=note]", "I am driving to her street")
    ana.click("#add-note")
    ana.wait_for_selector("p.flash.ok")
    page.wait_for_selector("#events li:has-text('I am driving to her street')", timeout=15_000)
    assert page.input_value("textarea[name=note]") == "called her brother, no answer ye"
    assert page.input_value("select[name=resolution]") == "false_alarm"
    assert page.evaluate("window.sameDocument") is True and page.errors == []


def test_a_duress_alert_cannot_be_closed_with_one_click(browser, console):  # noqa: F811
    base, db = console
    iid = open_alert(db, AMINA, duress=True)
    page = _login(browser, base)
    page.goto(f"{base}/alerts/{iid}")
    # Nothing is chosen for her, and the button waits for the confirmation.
    assert page.input_value("select[name=resolution]") == ""
    assert page.is_disabled("#resolve")
    # Even a form sent around the page's checks (a script, an old tab) is refused by the console.
    page.select_option("select[name=resolution]", "safe")
    page.fill("input[name=reason]", "she called")
    page.evaluate("document.querySelector('#resolve').disabled = false; "
                  "document.querySelector('#confirm-duress').required = false")
    page.click("#resolve")
    page.wait_for_selector("p.flash.error")
    assert "DURESS" in page.inner_text("p.summary")
    page.select_option("select[name=resolution]", "safe")
    page.fill("input[name=reason]", "she called from her brother's phone and gave the code word")
    assert page.is_disabled("#resolve")
    page.check("#confirm-duress")
    page.click("#resolve")
    page.wait_for_selector("p.flash.ok")
    assert "resolved" in page.inner_text("p.summary")


def test_a_viewer_sees_no_action_she_cannot_take(browser, console):  # noqa: F811
    base, db = console
    iid = open_alert(db, AMINA)
    w = Writer(db).start()
    w.call(lambda d: users.add(d, "vic", "viewer", PASSWORD, time.time(), "test"))
    w.stop()
    page = _login(browser, base, "vic")
    page.goto(f"{base}/alerts/{iid}")
    assert page.locator("main button").count() == 0
    assert page.locator("textarea").count() == 0


def test_the_banner_says_the_daemon_stopped_within_10_s(browser, station):  # noqa: F811
    base, _, procs = station
    page = _login(browser, base, width=390)
    wait_until(lambda: page.locator("#banner .critical").count() == 0, 30, 0.5,
               what="a running daemon connected to its radio: no critical problem")
    page.evaluate("window.sameDocument = true")
    procs[1].send_signal(signal.SIGTERM)
    page.wait_for_selector("#banner .critical[data-key=daemon]", timeout=10_000)
    assert "NOT" in page.inner_text("#banner")
    assert page.evaluate("window.sameDocument") is True
    # Full width on a phone, above the page.
    box = page.evaluate("document.querySelector('#banner .critical').getBoundingClientRect().width")
    assert box >= 389


def test_a_fresh_station_gets_its_administrator_and_a_coordinator_entirely_in_the_browser(browser, tmp_path):  # noqa: F811
    from station.config import validate
    from tests.web.consoles import station_console
    from web import first_run
    db = tmp_path / "station.db"
    with station_console(db) as base:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(base + "/")
        page.wait_for_url(base + "/setup")
        code = first_run.code_path(validate({"storage": {"database": str(db)}}, None, tmp_path)).read_text().strip()
        page.fill("input[name=code]", code)
        page.fill("input[name=name]", "amadou")
        page.fill("input[name=password]", "the first administrator")
        page.fill("input[name=again]", "the first administrator")
        page.click("#create-admin")
        page.wait_for_selector("nav a[href='/users/']")
        page.click("nav a[href='/users/']")
        page.wait_for_selector("#add-user")
        page.fill("#add-user input[name=name]", "maria")
        page.select_option("#add-user select[name=role]", "coordinator")
        page.fill("#add-user input[name=password]", PASSWORD)
        page.fill("#add-user input[name=again]", PASSWORD)
        page.click("#add-user button[type=submit]")
        page.wait_for_selector("tr[data-user=maria]")
        assert "coordinator" in page.inner_text("tr[data-user=maria]")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        other = _login(browser, base, "maria")
        assert "maria (coordinator)" in other.inner_text("header")
        page.click("tr[data-user=maria] button.revoke")
        page.wait_for_selector("p.flash.ok")
        other.reload()
        assert "/login" in other.url


def test_a_coordinator_settles_a_post_that_may_have_gone_out_in_the_browser(browser, console):  # noqa: F811
    base, db = console
    iid = open_alert(db, AMINA)
    w = Writer(db).start()
    w.call(lambda d: d.execute(
        "INSERT INTO outbox (incident_id, destination, kind, seq, priority, state, reason, text, has_link, "
        "idempotency_key, created_at, updated_at) VALUES (?, 'x', 'alert', 0, 0, 'uncertain', 'timeout after sending', "
        "'ALERT near Medina', 0, 'k1', 0, 0)", (iid,)))
    w.stop()
    page = _login(browser, base, width=390)
    page.wait_for_selector("#banner [data-key=uncertain-posts]")
    page.goto(f"{base}/alerts/{iid}")
    page.fill(".settle-posted input[name=url]", "https://x.example/status/42")
    page.click(".settle-posted button")
    page.wait_for_selector("p.flash.ok")
    assert "https://x.example/status/42" in page.inner_text("#publication")
    wait_until(lambda: page.locator("#banner [data-key=uncertain-posts]").count() == 0, 10, 0.3,
               what="the banner to drop the settled post")


def test_a_coordinator_registers_a_heard_bracelet_and_retires_it_entirely_in_the_browser(browser, console):  # noqa: F811
    import base64
    base, db = console
    w = Writer(db).start()
    w.call(lambda d: d.execute("INSERT INTO nodes (num, node_id, long_name, short_name, first_heard, last_heard) "
                               "VALUES (?, '!b5a1e00a', 'Fatou S.', 'FAT', 0, ?)", (0xB5A1E00A, time.time())))
    w.stop()
    page = _login(browser, base, width=390)
    page.click("nav a[href='/nodes']")
    page.click("a.register[href*='b5a1e00a']")
    page.wait_for_selector("#register")
    assert page.input_value("input[name=label]") == "Fatou S."
    page.fill("input[name=public_key]", base64.b64encode(bytes(range(32))).decode())
    for field, pin in (("cancel_pin", "246813"), ("cancel_pin_again", "246813"), ("duress_pin", "135792"),
                       ("duress_pin_again", "135792")):
        page.fill(f"input[name={field}]", pin)
    page.click("#register-bracelet")
    page.wait_for_selector("p.flash.ok")
    assert "cancel PIN: set" in page.inner_text("main") and "duress PIN: set" in page.inner_text("main")
    assert page.is_disabled("#retire button")
    page.check("#confirm-retire")
    page.click("#retire button")
    page.wait_for_selector("p.flash.ok")
    assert "Amina D." in page.inner_text("main table") and "Fatou S." not in page.inner_text("main table")
    assert page.errors == []
