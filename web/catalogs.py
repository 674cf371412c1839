"""The console's gettext catalogs, kept with translators' usual tools in mind (Poedit, Weblate,
msgfmt all read web/translations/LANG/LC_MESSAGES/messages.po).

    python -m web.catalogs extract    # web/translations/messages.pot from the sources
    python -m web.catalogs update     # merge it into every messages.po (new strings left empty)
    python -m web.catalogs compile    # messages.mo beside each .po: what the console reads
    python -m web.catalogs init LANG  # a new language

`pybabel extract` alone would see only the `_()` and `ngettext()` calls: the core's refusals
(station.errors.Refusal), the event log's sentences (station.wording.Wording) and actions, and
the stored code words (web.terms.CODE_WORDS) are shown translated too, so they are collected
here from the code itself.
"""

from __future__ import annotations

import ast
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
WEB, STATION = ROOT / "web", ROOT / "station"
TRANSLATIONS = WEB / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"

_STRING = r'"((?:[^"\\]|\\.)+)"'


def _sources() -> list[Path]:
    # Not this file: its own docstrings show the calls it looks for.
    return [*sorted((WEB / "templates").glob("*.html")),
            *sorted(f for f in WEB.glob("*.py") if f.name != "catalogs.py")]


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT))


def wrapped() -> dict[str, set[str]]:
    """`_("...")` in templates and the console's Python, and `N_("...")` where text is defined
    apart from where it is shown: each string with the files it is in."""
    out: dict[str, set[str]] = {}
    for f in _sources():
        for m in re.findall(r"\bN?_\(" + _STRING, f.read_text()):
            out.setdefault(m, set()).add(_where(f))
    return out


def plurals() -> dict[tuple[str, str], set[str]]:
    """`ngettext("singular", "plural", n, ...)` calls."""
    out: dict[tuple[str, str], set[str]] = {}
    for f in _sources():
        for one, many in re.findall(r"\bngettext\(" + _STRING + r",\s*" + _STRING, f.read_text()):
            out.setdefault((one, many), set()).add(_where(f))
    return out


@dataclass
class CoreStrings:
    found: dict[str, set[str]]
    composed: list[str]          # places that build the text in code, which no catalog can translate


def _trees() -> dict[Path, ast.AST]:
    return {f: ast.parse(f.read_text()) for f in sorted([*STATION.rglob("*.py"), *WEB.glob("*.py")])}


def _name(call: ast.Call) -> str | None:
    return getattr(call.func, "id", None) or getattr(call.func, "attr", None)


def _collect(kinds: set[str], trees: dict[Path, ast.AST]) -> CoreStrings:
    found: dict[str, set[str]] = {}
    composed = []
    for f, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node) in kinds and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(arg.value, set()).add(_where(f))
                else:
                    composed.append(f"{_where(f)}:{node.lineno}")
    return CoreStrings(found, composed)


def refusals(trees: dict[Path, ast.AST] | None = None) -> CoreStrings:
    """Templates of every `Refusal` the core raises (subclasses included, wherever defined)."""
    trees = trees or _trees()
    classes = [c for t in trees.values() for c in ast.walk(t) if isinstance(c, ast.ClassDef)]
    kinds: set[str] = {"Refusal"}
    while True:
        more = {c.name for c in classes if {getattr(b, "id", getattr(b, "attr", None)) for b in c.bases} & kinds}
        if more <= kinds:
            break
        kinds |= more
    # Every construction, raised at once or kept to raise later.
    return _collect(kinds, trees)


def wordings(trees: dict[Path, ast.AST] | None = None) -> CoreStrings:
    return _collect({"Wording"}, trees or _trees())


# log_event(db, incident, at, actor, ACTION, DETAIL), and the radio tools' wrappers
# record(ACTION, DETAIL) and record_event(ctx, by, ACTION, DETAIL).
_EVENT_CALLS = {"log_event": 4, "record": 0, "record_event": 2}


def event_actions(trees: dict[Path, ast.AST] | None = None) -> CoreStrings:
    """Literal actions written to the event log, and details composed in an f-string or by
    concatenation (which must be `Wording`s to be translated)."""
    found: dict[str, set[str]] = {}
    composed = []
    for f, tree in (trees or _trees()).items():
        for node in ast.walk(tree):
            where = _EVENT_CALLS.get(_name(node)) if isinstance(node, ast.Call) else None
            if where is None or len(node.args) <= where:
                continue
            action = node.args[where]
            if isinstance(action, ast.Constant):
                found.setdefault(action.value, set()).add(_where(f))
            details = node.args[where + 1:where + 2]
            if any(isinstance(a, ast.JoinedStr | ast.BinOp) for a in [action, *details]):
                composed.append(f"{_where(f)}:{node.lineno}")
    return CoreStrings(found, composed)


def template_catalog() -> Catalog:
    from web.terms import CODE_WORDS
    trees = _trees()
    cat = Catalog(project="field-station", msgid_bugs_address="", fuzzy=False)
    singles: dict[str, set[str]] = {}
    for part in (wrapped(), refusals(trees).found, wordings(trees).found, event_actions(trees).found,
                 {w: {"web/terms.py"} for w in CODE_WORDS}):
        for text, files in part.items():
            singles.setdefault(text, set()).update(files)
    for text, files in sorted(singles.items()):
        cat.add(text, locations=[(f, None) for f in sorted(files)], flags=_flags(text))
    for (one, many), files in sorted(plurals().items()):
        cat.add((one, many), locations=[(f, None) for f in sorted(files)], flags=_flags(one + many))
    return cat


def _flags(text: str) -> list[str]:
    return ["python-brace-format"] if re.search(r"\{\w+", text) else []


def placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"\{(\w+)[^}]*\}", text))


def po_files() -> list[Path]:
    return sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))


def read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)


def _write_po(path: Path, cat: Catalog) -> None:
    buf = io.BytesIO()
    write_po(buf, cat, include_lineno=False, sort_output=True, ignore_obsolete=True, width=100)
    path.write_bytes(buf.getvalue())


def compiled(cat: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, cat, use_fuzzy=False)
    return buf.getvalue()


def ids(cat: Catalog) -> set:
    return {m.id for m in cat if m.id}


def extract() -> None:
    cat = template_catalog()
    # The file changes only when the strings do, not at each run (its date would).
    def where(c: Catalog) -> dict:
        return {m.id: m.locations for m in c if m.id}
    if not TEMPLATE.exists() or where(read(TEMPLATE)) != where(cat):
        _write_po(TEMPLATE, cat)


def update() -> None:
    template = read(TEMPLATE)
    for path in po_files():
        cat = read(path)
        cat.update(template, no_fuzzy_matching=True)
        _write_po(path, cat)


def compile_all() -> None:
    for path in po_files():
        path.with_suffix(".mo").write_bytes(compiled(read(path)))


def init(lang: str) -> None:
    path = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    cat = read(TEMPLATE)
    cat.locale = lang
    cat.revision_date = cat.creation_date
    _write_po(path, cat)


def main(argv: list[str]) -> int:
    commands = {"extract": extract, "update": update, "compile": compile_all}
    if len(argv) == 2 and argv[0] == "init":
        init(argv[1])
    elif len(argv) == 1 and argv[0] in commands:
        commands[argv[0]]()
    else:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
