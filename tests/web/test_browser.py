"""The console in a real browser (Playwright driving Debian's chromium), against `station run` on
the virtual radio and `station console` under waitress: log in, see an SOS appear live,
acknowledge it, approve publication, see the outbox change, resolve it. A screenshot of the
alert page is kept in tests/artifacts/."""

from __future__ import annotations

import os
import signal
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
    yield f"http://127.0.0.1:{console_port}", hook
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    hook.down()


def test_coordinator_sees_an_sos_live_acknowledges_approves_and_resolves(browser, station):
    base, hook = station
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
