"""Sentences the station writes for people to read later (event-log details and actions): the
English text with its {named} values kept apart, as `Refusal` does for errors, so that the
console can show the event log in the coordinator's language while the command line, the
exports and the database's `detail` column keep plain English."""

from __future__ import annotations

import json


class Wording(str):
    """A str (so every caller that stores or prints it is unchanged) that remembers its template."""

    template: str
    values: dict

    def __new__(cls, template: str, **values):
        self = super().__new__(cls, template.format(**values))
        self.template, self.values = template, values
        return self


def _encoded(value):
    # A value may itself be a wording (a clause present only sometimes), translated whole.
    if isinstance(value, Wording):
        return {"template": value.template, "values": {k: _encoded(v) for k, v in value.values.items()}}
    return value if isinstance(value, (int, float)) or value is None else str(value)


def stored(action: str, detail: str) -> str | None:
    """The `events.wording` column: the templates and values of whichever of the two are
    wordings, or NULL when both are plain text (a coordinator's note stays exactly as typed)."""
    parts = {name: _encoded(w) for name, w in (("action", action), ("detail", detail)) if isinstance(w, Wording)}
    return json.dumps(parts, ensure_ascii=False) if parts else None
