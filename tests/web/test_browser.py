"""The console in a real browser (Playwright driving Debian's chromium), against `station run` on
the virtual radio and `station console` under waitress: log in, see an SOS appear live,
acknowledge it, approve publication, see the outbox change, resolve it. A screenshot of the
alert page is kept in tests/artifacts/."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from station.radio.virtual.bracelets import cast
from tests.conftest import free_port, listening, register_cast, wait_until
from tests.fakes.social import FakeWebhook
from tests.relay.conftest import secret_files

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# A real Chromium against a real daemon and console: seconds each. The quick loop checks the same
# pages with Flask's test client; CI runs these.
pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("browser tests need playwright and Debian's chromium in CI (.ci/run installs chromium)")
        pytest.skip("playwright or /usr/bin/chromium missing")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def station(tmp_path):
    """A running station and console, with a webhook destination and Amina's consent on record."""
    hook = FakeWebhook(secret="value-of-secret_file").up()
    files = secret_files(tmp_path)
    radio_port, console_port = free_port(), free_port()
    db = tmp_path / "station.db"
    cfg = tmp_path / "station.toml"
    cfg.write_text(f"""
[radio]
port = "tcp://127.0.0.1:{radio_port}"
heartbeat_s = 1.0
[storage]
database = "{db}"
[gpio]
enabled = false
[console]
port = {console_port}
[relay]
offline_probe_interval_s = 0.2
online_after = 1
[[destinations]]
name = "partners"
kind = "webhook"
audience = "partners"
url = "{hook.url}/hook"
secret_file = "{files['secret_file']}"
""")
    register_cast(db, cast())
    from station.storage import db as dbmod
    conn = dbmod.connect(db)
    conn.execute("UPDATE bracelets SET publish='verified', approvals=1, precision='10km' WHERE label='Amina D.'")
    conn.conn.close()
    run = [sys.executable, "-m", "station", "--config", str(cfg)]
    subprocess.run(run + ["users", "add", "maria", "--role", "coordinator", "--password-stdin"],
                   input="a long enough secret\n", text=True, check=True, capture_output=True)
    procs = [
        subprocess.Popen([sys.executable, "-m", "station", "radio", "simulate", "--tcp", str(radio_port),
                          "--scenario", "sos", "--start-after", "8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    wait_until(lambda: listening(radio_port), 10, what="virtual radio")
    procs.append(subprocess.Popen(run + ["run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen(run + ["console"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_until(lambda: listening(console_port), 15, what="console")
    yield f"http://127.0.0.1:{console_port}", hook, procs
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    hook.down()


def test_coordinator_sees_an_sos_live_acknowledges_approves_and_resolves(browser, station):
    base, hook, _ = station
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(base + "/")
    assert "/login" in page.url
    page.fill("input[name=name]", "maria")
    page.fill("input[name=password]", "a long enough secret")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    # The SOS arrives while the page is open: it appears without a manual reload.
    page.wait_for_selector("tr.state-open", timeout=30_000)
    assert "Amina D." in page.inner_text("table.alerts")
    assert page.title().startswith("(1)")
    assert page.is_visible("#sound")            # the alarm waits for one click to be allowed to sound
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "alert-page.png"), full_page=True)
    # On a phone: nothing wider than the screen, the alert and its link still there.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.wait_for_selector("tr.state-open")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(ARTIFACTS / "alert-page-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1100, "height": 800})

    page.click("table.alerts a")
    page.click("#ack")
    page.wait_for_selector("p.flash.ok")
    assert "acknowledged" in page.inner_text("p.summary")
    assert page.inner_text("td:text('partners') ~ td >> nth=1") == "held"
    page.click("#approve")
    page.wait_for_selector("p.flash.ok")

    def published() -> bool:
        page.reload()
        return "sent" in page.inner_text("tr.post-sent") if page.query_selector("tr.post-sent") else False
    wait_until(published, 20, 0.5, what="the outbox row to be sent")
    assert len(hook.posts) == 1 and "ALERT" in hook.posts[0].text and "14.69" not in hook.posts[0].text

    page.select_option("select[name=resolution]", "safe")
    page.click("#resolve")
    page.wait_for_selector("p.flash.ok")
    assert "resolved" in page.inner_text("p.summary")
    wait_until(lambda: len(hook.posts) == 2, 20, what="the follow-up post")
    assert "is safe" in hook.posts[1].text


def test_a_technician_starts_a_press_test_and_a_check_from_a_phone(browser, station, tmp_path):
    base, _, _ = station
    cfg = str(tmp_path / "station.toml")
    subprocess.run([sys.executable, "-m", "station", "--config", cfg, "users", "add", "ana", "--role", "technician",
                    "--password-stdin"], input="a long enough secret\n", text=True, check=True, capture_output=True)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(base + "/login")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", "a long enough secret")
    page.click("button[type=submit]")
    page.wait_for_selector("nav a[href='/technician/']")
    # The console moves between its pages without reloading (the alarm lives on): wait for the
    # page to change rather than for a browser navigation.
    page.click("nav a[href='/technician/']")
    page.wait_for_url(base + "/technician/")
    wait_until(lambda: page.reload() or "Firmware" in page.inner_text("main"), 30, 0.5,
               what="the radio's handshake on the technician page")
    row = "tr[data-node='!b5a1e001']"
    page.click(f"{row} button:text('Press test')")
    page.wait_for_selector("p.flash.ok")
    assert "waiting for a press" in page.inner_text(f"{row} td.press-test")
    page.click(f"{row} button:text('Check over the mesh')")
    page.wait_for_selector("p.flash.ok")

    def checked() -> bool:
        page.reload()
        job = page.query_selector("tr.job-done, tr.job-failed")
        return job is not None and "answered:" in job.inner_text()
    wait_until(checked, 90, 1.0, what="the check's result on the page")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "technician-phone.png"), full_page=True)


def test_a_dead_console_stops_no_alert_and_a_new_one_shows_it(station, tmp_path):
    """kill -9 the console before the SOS: the daemon stores it; a console started again shows it."""
    import re

    import requests
    base, _, procs = station
    console = procs[2]
    console.kill()
    console.wait(5)
    db = sqlite3.connect(tmp_path / "station.db")
    wait_until(lambda: db.execute("SELECT COUNT(*) FROM incidents WHERE state='open'").fetchone()[0] == 1, 30,
               what="the SOS stored with no console running")
    procs[2] = subprocess.Popen(console.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = int(base.rsplit(":", 1)[1])
    wait_until(lambda: listening(port), 15, what="console again")
    s = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', s.get(base + "/login").text).group(1)
    s.post(base + "/login", data={"name": "maria", "password": "a long enough secret", "csrf_token": token})
    alerts = s.get(base + "/api/alerts").json()
    assert [a["name"] for a in alerts] == ["Amina D."]


def _login_maria(page, base: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=name]", "maria")
    page.fill("input[name=password]", "a long enough secret")
    page.click("button[type=submit]")
    page.wait_for_selector("nav")


@pytest.fixture
def console_with_map(tmp_path):
    """`station console` alone (no daemon needed) over a database holding one alert with a track
    in Dakar, a PMTiles country map and an MBTiles town map."""
    from web.maps import LEAFLET_DIR
    if not os.path.isdir(LEAFLET_DIR):
        if os.environ.get("CI"):
            pytest.fail("libjs-leaflet is missing in CI (.ci/run installs it)")
        pytest.skip("libjs-leaflet not installed")
    import time

    from station import maps
    from tests.web.consoles import seed, station_console
    from tests.web.tilefiles import make_mbtiles, make_pmtiles, pyramid

    db, now = tmp_path / "station.db", time.time()
    seed(db, ("INSERT INTO nodes (num, node_id, long_name, short_name, first_heard, last_heard) "
              "VALUES (1, '!00000001', 'Amina D.', 'AMI', ?, ?)", (now, now)),
         ("INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust, lat, lon) "
          "VALUES (1, ?, ?, 'button', 'open', 'registered', 14.6937, -17.4441)", (now, now)),
         ("INSERT INTO positions (node_num, source, received_at, lat, lon) VALUES (NULL, 'station_gps', ?, "
          "14.7167, -17.4677)", (now,)),
         *[("INSERT INTO positions (node_num, source, received_at, lat, lon) "
            "VALUES (1, 'position_app', ?, ?, -17.4441)", (now + i, 14.6900 + i * 0.0012)) for i in range(4)])
    maps.import_file(make_pmtiles(tmp_path / "country.pmtiles", pyramid(4, (230, 200, 200))), db)
    maps.import_file(make_mbtiles(tmp_path / "dakar.mbtiles", pyramid(6, (200, 230, 200)),
                                  bounds="-17.6,14.6,-17.3,14.9"), db)
    with station_console(db) as base:
        yield base


def test_the_incident_map_draws_local_tiles_and_the_track_with_no_internet(browser, console_with_map):
    base = console_with_map
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    asked, failed = [], []
    page.on("request", lambda r: asked.append(r.url))
    # Leaflet cancels the tiles of a zoom level it leaves (net::ERR_ABORTED): on a busy machine
    # some were still loading. A cancel is no failure; an error or a 404 is.
    page.on("requestfailed", lambda r: "ERR_ABORTED" not in (r.failure or "") and failed.append(
        f"{r.failure} {r.url}"))
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    _login_maria(page, base)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/alerts/1")
    page.wait_for_selector("#map .leaflet-tile-loaded", timeout=15_000)
    page.wait_for_load_state("networkidle")
    loaded = page.eval_on_selector_all(
        "#map img.leaflet-tile-loaded", "imgs => imgs.map(i => [i.src, i.naturalWidth])")
    # Zoomed to the track (past both files' deepest zoom): the town map's tiles, stretched, on top
    # of the country map's; every tile a real decoded image from this station.
    assert {u.split("/")[5] for u, _ in loaded} == {"country", "dakar"}
    assert all(width == 256 for _, width in loaded)
    zoom = page.evaluate("document.querySelector('#map img.leaflet-tile-loaded').src.split('/')[6]")
    assert int(zoom) <= 6
    assert page.locator("#map path.leaflet-interactive").count() == 2      # the track and the last fix
    assert page.evaluate("document.querySelector('#map').getBoundingClientRect().height") > 200
    assert all(u.startswith(base) for u in asked), [u for u in asked if not u.startswith(base)]
    # No tile asked outside a map's bounds or zooms (each would be a 404); the alerts page's event
    # stream is cut when the browser leaves it, which is no failure.
    assert [u for u in failed if not u.endswith("/api/stream")] == []
    assert errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "incident-map.png"), full_page=True)


def test_a_new_alert_appears_on_the_overview_map_without_a_reload(browser, console_with_map, tmp_path):
    """A coordinator keeps the map open on the office screen: the next SOS is drawn on the local
    tiles as it arrives, the page never reloads, and each mark links to its alert. A name someone
    typed into the node is shown as text, never run as markup."""
    from station.storage.writer import Writer
    from tests.web.consoles import open_alert
    w = Writer(tmp_path / "station.db").start()
    w.call(lambda db: db.execute("UPDATE nodes SET long_name='<img src=x id=pwned>' WHERE num=1"))
    w.stop()
    base = console_with_map
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _login_maria(page, base)
    page.click("nav a[href='/map']")
    page.wait_for_selector("#map .leaflet-tile-loaded", timeout=15_000)
    page.evaluate("window.stillHere = true")
    assert page.locator("#map path.leaflet-interactive").count() == 1
    iid = open_alert(tmp_path / "station.db", 1)
    wait_until(lambda: page.locator("#map path.leaflet-interactive").count() == 2, 20, 0.2,
               what="the new alert drawn on the map")
    assert page.evaluate("window.stillHere") is True
    drawn = page.evaluate("JSON.parse(document.querySelector('#map').dataset.points).map(p => p.href)")
    assert sorted(drawn) == ["/alerts/1", f"/alerts/{iid}"]
    page.locator("#map path.leaflet-interactive").last.hover()
    page.wait_for_selector(".leaflet-tooltip", timeout=5_000)
    page.locator("#map path.leaflet-interactive").last.click()
    page.wait_for_selector(".leaflet-popup a[href^='/alerts/']", timeout=5_000)
    assert "<img src=x id=pwned>" in page.inner_text(".leaflet-tooltip")
    assert page.locator("#pwned").count() == 0
    assert errors == []
