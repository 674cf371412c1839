"""Console translations: `_(...)` around English text in templates, catalogs in web/translations/LANG.json.

Server-side texts (flash messages, errors, the core's refusals through `message`) and stored
code words (states, trust levels, events, through the `term` filter) go through the same
catalogs. The language comes from `?lang=xx` (remembered in the session), else the browser's
Accept-Language, else English. A string missing from a catalog shows in English, and
tests/web/test_i18n.py fails until every wrapped string is in every catalog.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from flask import g, request, session

from station.errors import Refusal

CATALOGS = Path(__file__).with_name("translations")


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    path = CATALOGS / f"{lang}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@lru_cache(maxsize=None)
def languages() -> tuple[str, ...]:
    return ("en", *sorted(p.stem for p in CATALOGS.glob("*.json")))


def current() -> str:
    # Once per request: a page calls gettext hundreds of times (the benchmark's alert list went
    # from 2.8 to 11.7 ms when each call looked the language up again).
    if "lang" not in g:
        wanted = request.args.get("lang")
        if wanted in languages():
            session["lang"] = wanted
        if session.get("lang") in languages():
            g.lang = session["lang"]
        else:
            g.lang = request.accept_languages.best_match(languages()) or "en"
    return g.lang


@lru_cache(maxsize=1)
def station_zone() -> str:
    """The station's IANA time zone (Raspberry Pi OS links /etc/localtime into zoneinfo), in
    which pages show times whatever the browser's own zone: a coordinator's phone set to
    another zone must not shift the time of an alert."""
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return "UTC"
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "UTC"


def gettext(text: str, **values) -> str:
    lang = current()
    translated = catalog(lang).get(text, text) if lang != "en" else text
    return translated.format(**values) if values else translated


def N_(text: str) -> str:
    """Marks English text for the catalogs where it is defined; translated where it is shown."""
    return text


def term(value):
    """A stored code word (a state, a trust level, an event) in the reader's language, in plain
    words in English too (web/terms.py); any other value, a name or a number, unchanged."""
    if not isinstance(value, str):
        return value
    if current() == "en":
        from web.terms import PLAIN_EN
        return PLAIN_EN.get(value, value)
    return gettext(value)


def message(error: Exception) -> str:
    """A refusal from the station's core (`station.errors.Refusal`) in the reader's language."""
    if not isinstance(error, Refusal):
        return str(error)
    return gettext(error.template, **{k: term(v) for k, v in error.values.items()})
