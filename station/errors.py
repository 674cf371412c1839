"""Refusals an operator reads: the English text with its {named} values kept apart, so the
console can show it in the coordinator's language while the command line prints str()."""

from __future__ import annotations


class Refusal(ValueError):
    def __init__(self, template: str, **values):
        self.template, self.values = template, values
        super().__init__(template.format(**values))
