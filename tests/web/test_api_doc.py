"""docs/api.md is true: it names every API, export and action address the console has, no address
it does not have, the roles each one needs, and its shell example works against a real console."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from station import users

from .consoles import PASSWORD, seed, station_console
from .test_console_security import app  # noqa: F401  (fixture)

DOC = (Path(__file__).resolve().parent.parent.parent / "docs" / "api.md").read_text()


def documented() -> dict[tuple[str, str], str]:
    """(method, path with ID/NODE for numbers) -> the table row's role cell (or the section's)."""
    out, section_roles = {}, ""
    for line in DOC.replace("\\|", "/").splitlines():
        if line.startswith("## "):
            found = re.search(r"\(([^)]*)\)", line)
            section_roles = found.group(1) if found else ""
        m = re.match(r"\| `(GET|POST) (/[^ `?]+)[^`]*`(?: with [^|]*)? \|(.*)", line)
        if m:
            cells = [c.strip() for c in m.group(3).split("|")]
            roles = cells[0] if m.group(1) == "POST" else section_roles
            out[(m.group(1), m.group(2))] = roles
    return out


def served(app) -> dict[tuple[str, str], str]:   # noqa: F811
    out = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<int:iid>", "ID", re.sub(r"<int:num>", "NODE", rule.rule))
        path = path.replace("<name>", "NAME").replace("<action>", "ACTION").replace("<int:row>", "ROW")
        view = app.view_functions[rule.endpoint]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if path.startswith(("/api/", "/exports/")) or (method == "POST" and rule.endpoint.startswith(
                    ("alerts.", "wearers.", "technician.", "accounts.", "register.", "backups."))):
                # The wearer page reads with "read" and checks "wearers" itself before a change.
                out[(method, path)] = "wearers" if (method, rule.endpoint) == ("POST", "wearers.edit") \
                    else view.required_permission
    return out


def roles_with(permission: str) -> set[str]:
    return {r for r, perms in users.PERMISSIONS.items() if permission in perms}


def test_the_page_names_every_address_and_no_other(app):   # noqa: F811
    assert sorted(documented()) == sorted(served(app))


def test_the_roles_on_the_page_are_the_roles_the_console_checks(app):   # noqa: F811
    doc = documented()
    for key, permission in served(app).items():
        named = set(re.findall(r"\b(" + "|".join(users.ROLES) + r")\b", doc[key]))
        if "any role" in doc[key]:
            named = set(users.ROLES)
        assert named == roles_with(permission), key


def test_the_shell_example_logs_in_reads_and_acknowledges(tmp_path):
    if not shutil.which("curl"):
        if os.environ.get("CI"):
            pytest.fail("curl is missing in CI (.ci/run installs it)")
        pytest.skip("curl not installed")
    db, now = tmp_path / "station.db", time.time()
    seed(db, ("INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust) "
              "VALUES (1, ?, ?, 'button', 'open', 'registered')", (now, now)))
    with station_console(db) as base:
        script = re.search(r"```sh\n(.*?)```", DOC, re.S).group(1).replace("http://127.0.0.1:8080", base)
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                             text=True, timeout=30, env=dict(os.environ, PASSWORD=PASSWORD))
    assert out.returncode == 0, out.stderr
    assert '"state":"open"' in out.stdout.replace(" ", "") and '"trust":"registered"' in out.stdout.replace(" ", "")
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT state, acknowledged_by FROM incidents").fetchone() == ("acknowledged", "console:maria")
