"""Console strings are translatable: the text of every template, every message the console's own
code sends (flash texts, errors), every refusal the station's core raises and every stored code
word the pages show goes through a catalog, and every catalog has them all."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from web import catalogs

from .test_console_security import app, login  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent.parent
WEB = ROOT / "web"
PO_FILES = catalogs.po_files()


def test_extraction_finds_every_kind_of_string():
    assert {"Acknowledge", "note added", "your role may not do this ({permission})"} <= set(catalogs.wrapped())
    assert ("{n} press by {source}", "{n} presses by {source}") in catalogs.plurals()
    assert {"there is no alert {iid}", "a label is 1 to 64 characters", "user {name} exists already",
            "there is no outbox row {row}"} <= set(catalogs.refusals().found)
    assert {"alert opened", "acknowledged", "publication approved", "radio configured", "radio restored",
            "radio configuration failed"} <= set(catalogs.event_actions().found)
    assert {"wrong PIN ({n} of {limit})", "; proven by her key"} <= set(catalogs.wordings().found)


def test_no_shown_text_is_composed_in_code():
    """A refusal, an event action or detail built in an f-string or by concatenation could not be
    translated: they are `Refusal`s and `Wording`s with named values."""
    assert catalogs.refusals().composed == []
    assert catalogs.wordings().composed == []
    assert catalogs.event_actions().composed == []


def test_the_template_holds_what_the_code_shows():
    """web/translations/messages.pot is what a translator's tool merges from: `python -m
    web.catalogs extract` after changing a string."""
    assert catalogs.ids(catalogs.read(catalogs.TEMPLATE)) == catalogs.ids(catalogs.template_catalog())


@pytest.mark.parametrize("po", PO_FILES, ids=lambda p: p.parent.parent.name)
def test_every_string_is_translated_in_every_catalog(po):
    cat, wanted = catalogs.read(po), catalogs.ids(catalogs.template_catalog())
    assert sorted(map(str, wanted - catalogs.ids(cat))) == []
    assert sorted(map(str, catalogs.ids(cat) - wanted)) == []         # no stale entries either
    for m in cat:
        if not m.id:
            continue
        assert not m.fuzzy, m.id
        sources = m.id if isinstance(m.id, tuple) else (m.id,)
        targets = m.string if isinstance(m.string, tuple) else (m.string,)
        assert len(targets) == (cat.num_plurals if isinstance(m.id, tuple) else 1), m.id
        for target in targets:
            assert target.strip(), m.id
            assert catalogs.placeholders(target) == catalogs.placeholders(sources[-1]), m.id


@pytest.mark.parametrize("po", PO_FILES, ids=lambda p: p.parent.parent.name)
def test_the_console_reads_what_the_translator_wrote(po):
    """The .mo beside each .po is compiled from it (`python -m web.catalogs compile`)."""
    assert po.with_suffix(".mo").read_bytes() == catalogs.compiled(catalogs.read(po))


@pytest.mark.skipif(not shutil.which("msgfmt"), reason="GNU gettext's msgfmt is not installed")
@pytest.mark.parametrize("po", PO_FILES, ids=lambda p: p.parent.parent.name)
def test_gnu_gettext_accepts_the_catalogs(po, tmp_path):
    """msgfmt --check is what Poedit and Weblate run: headers, plural forms and every
    python-brace-format placeholder checked by another implementation than ours."""
    done = subprocess.run(["msgfmt", "--check", "-o", str(tmp_path / "m.mo"), str(po)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


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
    from web.terms import CODE_WORDS, PLAIN_EN
    coded = sorted(t for t in CODE_WORDS if re.search(r"[_\d-]", t) and t not in PLAIN_EN)
    assert coded == []
    assert all(not re.search(r"_", words) for words in PLAIN_EN.values())


def test_a_french_coordinator_reads_the_event_log_and_counts_in_french(app):   # noqa: F811
    """The sentences the station writes into the log (here a resolution with its reason, and a
    wrong PIN the core counted) read in French, their code words too, and counts take French
    plural forms: 0 and 1 are singular in French, unlike English."""
    from station import incidents
    from station.storage.writer import Writer
    from station.wording import Wording
    w = Writer(app.station_config.database_path).start()
    try:
        w.call(lambda db: db.execute("UPDATE incidents SET press_count=1 WHERE id=1"))
        w.call(lambda db: db.execute("UPDATE incidents SET press_count=3 WHERE id=2"))
        w.call(lambda db: incidents.log_event(db, 2, 0, "wearer", "cancel rejected",
                                              Wording("wrong PIN ({n} of {limit})", n=2, limit=3)))
    finally:
        w.stop()
    c = app.test_client()
    token = login(c, "coordinator")
    fr = {"Accept-Language": "fr"}
    c.post("/alerts/1/resolve", data={"csrf_token": token, "resolution": "false_alarm",
                                      "reason": "bouton touché par erreur"}, headers=fr)
    page = html.unescape(c.get("/alerts/1", headers=fr).get_data(as_text=True))
    assert "fausse alerte : bouton touché par erreur" in page
    assert "1 appui par " in page
    page = html.unescape(c.get("/alerts/2", headers=fr).get_data(as_text=True))
    assert "porteuse: annulation refusée — PIN erroné (2 sur 3)" in page and "3 appuis par " in page
    page = html.unescape(c.get("/alerts/2", headers={"Accept-Language": "en"}).get_data(as_text=True))
    assert "wearer: cancel rejected — wrong PIN (2 of 3)" in page and "3 presses by " in page


def test_a_coordinators_note_is_shown_exactly_as_typed_in_every_language(app):   # noqa: F811
    c = app.test_client()
    token = login(c, "coordinator")
    c.post("/alerts/1/note", data={"csrf_token": token, "note": "safe {n} none"})
    for lang in ("en", "fr"):
        page = html.unescape(c.get("/alerts/1", headers={"Accept-Language": lang}).get_data(as_text=True))
        assert "safe {n} none" in page
