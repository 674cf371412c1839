"""Console strings are translatable: every wrapped string is in every catalog, and a browser asking
for French gets French."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .test_console_security import app, login  # noqa: F401  (fixture)

WEB = Path(__file__).resolve().parent.parent.parent / "web"
WRAPPED = sorted({m for f in (WEB / "templates").glob("*.html") for m in re.findall(r'_\("([^"]+)"', f.read_text())})


@pytest.mark.parametrize("catalog", sorted((WEB / "translations").glob("*.json")), ids=lambda p: p.stem)
def test_every_wrapped_string_is_translated(catalog):
    entries = json.loads(catalog.read_text(encoding="utf-8"))
    assert WRAPPED and [s for s in WRAPPED if s not in entries] == []
    assert [s for s in entries if s not in WRAPPED] == []          # no stale entries either
    for source, target in entries.items():
        assert re.findall(r"\{\w+\}", source) == re.findall(r"\{\w+\}", target), source


def test_a_french_browser_gets_french_and_can_switch_back(app):   # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9"}).get_data(as_text=True)
    assert "<h1>Alertes</h1>" in page and 'lang="fr"' in page
    page = c.get("/?lang=en", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "<h1>Alerts</h1>" in page
    assert "<h1>Alerts</h1>" in c.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)  # remembered
