"""Every console page, at a desk (1280 px) and on a phone (390 px), in English and French, checked
by axe-core (from npm, as accessibility auditors use it): no serious or critical violation, so a
coordinator with low vision, a screen reader or only a phone in the sun can work an alert."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.web.consoles import open_alert
from tests.web.test_browser import browser  # noqa: F401  (fixture)
from tests.web.test_browser_live import AMINA, _login, console  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow
AXE = Path(__file__).resolve().parents[2] / ".venv/node/node_modules/axe-core/axe.min.js"
PAGES = ["/", "/?state=all", "/alerts/1", "/alerts/2", "/map", "/wearers/", f"/wearers/{AMINA}", "/nodes", "/health",
         "/technician/", "/users/"]


def _axe() -> str:
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail("axe-core is missing in CI (install.sh --dev installs it with npm)")
        pytest.skip("axe-core not installed (npm install --prefix .venv/node axe-core)")
    return AXE.read_text()


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_page_has_no_serious_accessibility_violation(browser, console, width, lang):  # noqa: F811
    source = _axe()
    base, db = console
    open_alert(db, AMINA)
    open_alert(db, 0xB5A1E002, duress=True)
    page = _login(browser, base, "admin", width=width)
    found = {}
    for path in PAGES:
        page.goto(f"{base}{path}{'&' if '?' in path else '?'}lang={lang}")
        page.wait_for_selector("main")
        page.evaluate(source)            # evaluated by the browser itself: no script tag, the CSP stays strict
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        bad = [f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']} {v['nodes'][0]['failureSummary'][:160]}"
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
        if bad:
            found[path] = bad
    assert found == {}


def test_buttons_and_row_links_are_44_px_on_a_phone(browser, console):  # noqa: F811
    base, db = console
    iid = open_alert(db, AMINA, duress=True)
    page = _login(browser, base, "admin", width=390)
    small = {}
    for path in ("/", f"/alerts/{iid}", "/users/"):
        page.goto(base + path)
        page.wait_for_selector("main")
        sizes = page.eval_on_selector_all(
            "button:not([hidden]), header nav a, a.open-alert, select, input:not([type=hidden]):not([type=checkbox])",
            "els => els.filter(e => e.offsetParent !== null).map(e => [e.outerHTML.slice(0, 60), "
            "e.getBoundingClientRect().height])")
        too_small = [h for h, height in sizes if height < 43.5]
        if too_small:
            small[path] = too_small
    assert small == {}
