"""Static checks that have caught real bugs here: undefined names (a lambda outliving its except
block's `e`), unused imports, closures over loop variables."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ruff(select: str, *paths: str) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    return subprocess.run([exe, "check", "--select", select, "--output-format", "concise", *paths], cwd=REPO,
                          capture_output=True, text=True)


def test_pyflakes_passes_everywhere():
    result = ruff("F,E9", "station", "web", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_closure_outlives_its_loop_variable_in_code_that_runs_in_threads():
    # Tests use such closures synchronously (wait_until) within one iteration; the daemon, the
    # console and the benchmarks hand them to other threads.
    result = ruff("B023", "station", "web", "bench")
    assert result.returncode == 0, result.stdout + result.stderr
