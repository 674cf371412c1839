"""Shell scripts pass shellcheck, and install.sh explains itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .test_systemd import need

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["install.sh", ".ci/run"])
def test_shellcheck_is_clean(script):
    result = subprocess.run([need("shellcheck"), str(REPO / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_install_sh_help_lists_every_mode():
    result = subprocess.run(["bash", str(REPO / "install.sh"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--dev", "--uninstall", "--purge", "--dry-run", "--root"):
        assert option in result.stdout


def test_install_sh_refuses_unknown_options():
    result = subprocess.run(["bash", str(REPO / "install.sh"), "--frobnicate"], capture_output=True, text=True)
    assert result.returncode == 1 and "unknown option: --frobnicate" in result.stderr
