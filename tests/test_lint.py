"""Static checks that have caught real bugs here: undefined names (a lambda outliving its except
block's `e`), unused imports, closures over loop variables."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_pyflakes_and_closure_checks_pass():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "--select", "F,E9,B023", "--output-format", "concise",
                             "station", "web", "tests", "bench"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
