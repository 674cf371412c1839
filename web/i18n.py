"""Console translations: `_(...)` and `ngettext(...)` around English text, gettext catalogs
(web/translations/LANG/LC_MESSAGES/messages.po, compiled to .mo) read through Flask-Babel.

Server-side texts (flash messages, errors, the core's refusals through `message`), stored code
words (states, trust levels, events, through the `term` filter) and the event log's sentences
(station/wording.py, through `said`) go through the same catalogs. The language comes from
`?lang=xx` (remembered in the session), else the browser's Accept-Language, else English. A
string missing from a catalog shows in English, and tests/web/test_i18n.py fails until every
string is in every catalog; `python -m web.catalogs` extracts, updates and compiles them.
Placeholders are `{named}` (str.format), flagged python-brace-format in the catalogs.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from flask import Flask, g, request, session
from flask_babel import Babel, get_translations

from station.errors import Refusal

CATALOGS = Path(__file__).with_name("translations")


@lru_cache(maxsize=None)
def languages() -> tuple[str, ...]:
    return ("en", *sorted(p.parent.parent.name for p in CATALOGS.glob("*/LC_MESSAGES/messages.mo")))


def init(app: Flask) -> None:
    Babel(app, locale_selector=current, default_translation_directories=str(CATALOGS))


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
    translated = get_translations().gettext(text) if current() != "en" else text
    return translated.format(**values) if values else translated


def ngettext(singular: str, plural: str, n: int, **values) -> str:
    """The form for `n` in the reader's language (French says "1 appui", "0 appui": its rule is
    not English's), with `{n}` filled in."""
    if current() != "en":
        translated = get_translations().ngettext(singular, plural, n)
    else:
        translated = singular if n == 1 else plural
    return translated.format(n=n, **values)


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


def _worded(part) -> str:
    if isinstance(part, dict):
        return gettext(part["template"], **{k: _worded(v) for k, v in part["values"].items()})
    return term(part)


def said(event: dict, field: str) -> str:
    """An event's action or detail in the reader's language: the wording the station stored
    (station/wording.py) translated with its values, else the text itself (a code word
    translated, a coordinator's note exactly as typed)."""
    kept = json.loads(event["wording"]).get(field) if event.get("wording") else None
    if kept is not None and current() != "en":
        return _worded(kept)
    return term(event[field])


def message(error: Exception) -> str:
    """A refusal from the station's core (`station.errors.Refusal`) in the reader's language."""
    if not isinstance(error, Refusal):
        return str(error)
    return gettext(error.template, **{k: term(v) for k, v in error.values.items()})
