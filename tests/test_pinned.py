"""Reproducible installs: a Pi installed next month gets the versions this suite passed with, not
whatever was published on install day (constraints.txt, used by install.sh and so by .ci/run)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt pins exactly: {line!r}"
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def test_every_dependency_the_station_declares_is_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", d).group()).lower() for d in declared}
    assert names - {"field-station"} <= set(pins()), names - set(pins())


def test_the_suite_runs_on_exactly_the_pinned_versions():
    wrong = {}
    for name, version in pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue        # a platform's own extra (none on this machine)
        if installed != version:
            wrong[name] = (installed, version)
    assert not wrong, f"installed versions differ from constraints.txt (run ./install.sh --dev): {wrong}"


def test_install_sh_installs_with_the_constraints():
    text = (REPO / "install.sh").read_text()
    assert '-c "$here/constraints.txt"' in text
    assert re.search(r'pip_install\(\) \{.*?-c "\$here/constraints.txt" "\$@"', text, re.S)
