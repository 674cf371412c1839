"""The service units: verified by systemd itself, and consistent with what the daemon does."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = sorted((REPO / "systemd").glob("station*.*"))
INSTALLED_BIN = "/opt/station/venv/bin/station"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing on the CI machine (.ci/run installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


def parse(unit: Path) -> configparser.ConfigParser:
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read_string(unit.read_text())
    return p


def verify(tmp_path: Path, unit: str, edit=lambda text: text) -> tuple[int, list[str]]:
    analyze = need("systemd-analyze")
    # verify insists that ExecStart exists: point it at this checkout's station, nothing else changes.
    station = REPO / ".venv" / "bin" / "station"
    if not station.exists():
        pytest.skip("no .venv/bin/station (run ./install.sh --dev)")
    for u in UNITS:
        (tmp_path / u.name).write_text(edit(u.read_text().replace(INSTALLED_BIN, str(station))))
    result = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True)
    # verify exits 0 on an unknown or misspelt directive and only warns: any word about the unit fails.
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit in line]
    return result.returncode, complaints


@pytest.mark.parametrize("unit", [u.name for u in UNITS])
def test_systemd_analyze_verify_accepts_the_unit(unit, tmp_path):
    assert verify(tmp_path, unit) == (0, [])


def test_the_verification_catches_a_misspelt_directive(tmp_path):
    code, complaints = verify(tmp_path, "station.service", lambda t: t.replace("PrivateTmp=", "PrivateTpm="))
    assert any("PrivateTpm" in c for c in complaints)


def test_station_service_is_a_hardened_notify_service_that_does_not_wait_for_the_network():
    s = parse(REPO / "systemd" / "station.service")
    svc, unit = s["Service"], s["Unit"]
    assert svc["Type"] == "notify" and svc["WatchdogSec"] and svc["Restart"] == "on-failure"
    assert svc["User"] == "station" and "dialout" in svc["SupplementaryGroups"]
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "DevicePolicy": "closed"}.items():
        assert svc[key] == value
    assert "network" not in unit.get("After", "") and "network" not in unit.get("Wants", "")
    assert "/var/lib/station" in svc["ReadWritePaths"]


def test_backup_timer_runs_the_backup_service_daily_and_catches_up():
    timer = parse(REPO / "systemd" / "station-backup.timer")
    assert timer["Timer"]["OnCalendar"] == "daily" and timer["Timer"]["Persistent"] == "true"
    service = parse(REPO / "systemd" / "station-backup.service")
    assert service["Service"]["Type"] == "oneshot" and service["Service"]["ExecStart"].endswith(" backup")


def test_units_call_commands_that_exist():
    from click.testing import CliRunner
    from station.cli import cli
    for unit in UNITS:
        s = parse(unit)
        if "Service" in s and s["Service"].get("ExecStart", "").split()[0].endswith("/station"):
            args = s["Service"]["ExecStart"].split()[1:]
            command = [a for a in args if not a.startswith("--") and not a.startswith("/")]
            assert CliRunner().invoke(cli, [*command, "--help"]).exit_code == 0, unit.name


def test_console_service_is_hardened_like_the_daemon_and_separate_from_it():
    s = parse(REPO / "systemd" / "station-console.service")
    svc = s["Service"]
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "PrivateDevices": "yes", "User": "station"}.items():
        assert svc[key] == value
    assert svc["ExecStart"].endswith(" console")
    # The console may stop or crash without taking the daemon along.
    assert "station.service" not in s["Unit"].get("Requires", "") + s["Unit"].get("BindsTo", "")
