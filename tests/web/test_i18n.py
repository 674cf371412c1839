"""Console strings are translatable: the text of every template, every message the console's own
code sends (flash texts, errors), every refusal the station's core raises and every stored code
word the pages show goes through a catalog, and every catalog has them all."""

from __future__ import annotations

import ast
import html
import json
import re
from pathlib import Path

import pytest

from station import incidents, registry, users
from station.relay import outbox

from .test_console_security import app, login  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent.parent
WEB, STATION = ROOT / "web", ROOT / "station"
CATALOGS = sorted((WEB / "translations").glob("*.json"))


def wrapped() -> set[str]:
    """`_("...")` in templates and in the console's Python, and `N_("...")` where text is defined
    apart from where it is shown."""
    files = [*(WEB / "templates").glob("*.html"), *WEB.glob("*.py")]
    return {m for f in files for m in re.findall(r'\bN?_\("((?:[^"\\]|\\.)+)"', f.read_text())}


def refusals() -> tuple[set[str], list[str]]:
    """Templates of every `Refusal` the core raises, and any raised from an f-string (which no
    catalog could translate)."""
    trees = {f: ast.parse(f.read_text()) for f in STATION.rglob("*.py")}
    classes = [c for t in trees.values() for c in ast.walk(t) if isinstance(c, ast.ClassDef)]
    kinds: set[str] = {"Refusal"}
    while True:     # subclasses of subclasses, wherever they are defined
        more = {c.name for c in classes if {getattr(b, "id", getattr(b, "attr", None)) for b in c.bases} & kinds}
        if more <= kinds:
            break
        kinds |= more
    found, fstrings = set(), []
    for f, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                name = getattr(node.exc.func, "id", None) or getattr(node.exc.func, "attr", None)
                if name in kinds:
                    arg = node.exc.args[0]
                    if isinstance(arg, ast.Constant):
                        found.add(arg.value)
                    else:
                        fstrings.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    return found, fstrings


def event_actions() -> set[str]:
    """The literal actions the core writes to the event log."""
    out = set()
    for f in STATION.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            # log_event(db, incident, at, actor, ACTION, ...), and the radio tools' wrappers
            # record(ACTION, detail) and record_event(ctx, by, ACTION, detail).
            where = {"log_event": 4, "record": 0, "record_event": 2}.get(name)
            if where is not None and len(node.args) > where and isinstance(node.args[where], ast.Constant):
                out.add(node.args[where].value)
    return out


# Code words stored in the database or the status snapshot and shown on the pages (`|term`).
TERMS = {
    incidents.OPEN, incidents.ACKNOWLEDGED, incidents.RESOLVED, *incidents.RESOLUTIONS, *registry.TRUST,
    *outbox.STATES, *(c for choices in registry.CONSENT_CHOICES.values() for c in choices), *users.ROLES,
    *{p for perms in users.PERMISSIONS.values() for p in perms},
    "connecting", "connected", "down", "stopped", "unknown",                 # radio link
    "system", "gps", "ok",                                                   # clock source, database check
    "position_app", "nmea", "station_gps",                                   # where a fix came from
    "bell", "keyword", "alert_app", "detection_sensor", "serial", "button",  # how an alert came
    "queued", "sending", "delivered", "expired", "skipped", "relayed",       # receipts to the wearer
    "alert", "update", "resolution", "retraction",                           # outbox kinds
    "done", "running", "withdrawn", "failed",                                # radio jobs
}


def needed() -> set[str]:
    return wrapped() | refusals()[0] | event_actions() | TERMS


def test_extraction_finds_every_kind_of_string():
    assert {"Acknowledge", "note added", "your role may not do this ({permission})"} <= wrapped()
    assert {"there is no alert {iid}", "a label is 1 to 64 characters", "user {name} exists already",
            "there is no outbox row {row}"} <= refusals()[0]
    assert {"alert opened", "acknowledged", "publication approved", "radio configured", "radio restored",
            "radio configuration failed"} <= event_actions()


def test_no_refusal_is_raised_from_an_f_string():
    assert refusals()[1] == []


@pytest.mark.parametrize("catalog", CATALOGS, ids=lambda p: p.stem)
def test_every_string_is_in_every_catalog(catalog):
    entries, wanted = json.loads(catalog.read_text(encoding="utf-8")), needed()
    assert sorted(s for s in wanted if s not in entries) == []
    assert sorted(s for s in entries if s not in wanted) == []         # no stale entries either
    for source, target in entries.items():
        assert re.findall(r"\{\w+[^}]*\}", source) == re.findall(r"\{\w+[^}]*\}", target), source
        assert target.strip(), source


def visible_text(template: str) -> list[str]:
    """Words a reader would see that no `_()` or value wraps: Jinja and markup removed."""
    s = re.sub(r"\{% block page %\}.*?\{% endblock %\}", " ", template)      # a data attribute, not text
    s = re.sub(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}|<!--.*?-->", " ", s, flags=re.S)
    s = re.sub(r"<(script|style|code)\b.*?</\1>", " ", s, flags=re.S)
    attrs = re.findall(r'\b(?:title|placeholder|aria-label|alt)="([^"]*)"', s)
    s = re.sub(r"<[^>]*>", " ", s)
    return [w for w in re.findall(r"\S*[A-Za-z]\S*", s + " " + " ".join(attrs))]


@pytest.mark.parametrize("template", sorted((WEB / "templates").glob("*.html")), ids=lambda p: p.name)
def test_templates_show_no_text_outside_a_catalog(template):
    assert visible_text(template.read_text()) == []


def test_the_scanner_sees_raw_text():
    assert visible_text('<p>{{ _("Fine") }} Raw words <b title="Hover">{{ x }}</b></p>') == ["Raw", "words", "Hover"]


def test_a_french_browser_gets_french_and_can_switch_back(app):   # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9"}).get_data(as_text=True)
    assert "<h1>Alertes</h1>" in page and 'lang="fr"' in page
    page = c.get("/?lang=en", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "<h1>Alerts</h1>" in page
    assert "<h1>Alerts</h1>" in c.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)  # remembered


def test_messages_refusals_and_code_words_come_in_french(app):   # noqa: F811
    c = app.test_client()
    token = login(c, "coordinator")
    fr = {"Accept-Language": "fr"}
    page = c.get("/alerts/1", headers=fr).get_data(as_text=True)
    assert "ouverte" in page and "non enregistré" in page and "alerte ouverte" in page    # state, trust, event
    assert '<option value="false_alarm">fausse alerte</option>' in page
    page = c.post("/alerts/1/ack", data={"csrf_token": token}, headers=fr, follow_redirects=True).get_data(as_text=True)
    assert '<p class="flash ok">prise en charge</p>' in page
    page = c.post("/alerts/1/ack", data={"csrf_token": token}, headers=fr, follow_redirects=True).get_data(as_text=True)
    assert "l'alerte 1 est prise en charge, pas ouverte" in html.unescape(page)    # the core's refusal, its state too
    r = c.post("/alerts/1/ack", data={"csrf_token": "wrong"}, headers=fr)
    assert r.status_code == 403 and "jeton CSRF" in r.get_data(as_text=True)
    r = c.get("/no/such/page", headers=fr)
    assert r.status_code == 404 and "Il n'y a rien à cette adresse." in html.unescape(r.get_data(as_text=True))
    r = c.get("/api/alerts/999999", headers=fr)
    assert r.status_code == 404 and r.get_json() == {"error": "Il n'y a rien à cette adresse."}


def test_english_stays_the_default_for_messages(app):   # noqa: F811
    c = app.test_client()
    token = login(c, "coordinator")
    c.post("/alerts/1/ack", data={"csrf_token": token})
    page = c.post("/alerts/1/ack", data={"csrf_token": token}, follow_redirects=True).get_data(as_text=True)
    assert "alert 1 is acknowledged, not open" in page


def test_every_code_word_reads_as_plain_english():
    """A coordinator reading the English pages never meets false_alarm, alert_app or 1km."""
    from web.terms import PLAIN_EN
    coded = sorted(t for t in TERMS if re.search(r"[_\d-]", t) and t not in PLAIN_EN)
    assert coded == []
    assert all(not re.search(r"_", words) for words in PLAIN_EN.values())
