"""`station doctor`: each problem found, explained, with a remedy; exit 1 when action is needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from station import doctor
from station.cli import cli
from station.storage import backup as bk
from station.storage.writer import Writer


def write_config(tmp_path, extra: str = "", mode: int = 0o640):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n[gpio]\nenabled = false\n' + extra)
    os.chmod(cfg, mode)
    return str(cfg)


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_missing_radio_port_fails_with_a_remedy(tmp_path):
    checks = by_name(doctor.run(write_config(tmp_path, f'[radio]\nport = "{tmp_path}/ttyUSB7"\n')))
    assert checks["radio"].status == doctor.FAIL and "is not present" in checks["radio"].message
    assert "plug the radio in" in checks["radio"].remedy


def test_radio_port_held_by_another_process_is_named(harness, tmp_path):
    h = harness("idle", "pty", start=False)
    h.sim.transport.plug()
    holder = subprocess.Popen([sys.executable, "-c", "import serial,sys,time; s=serial.Serial(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(20)", str(h.sim.transport.link)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        checks = by_name(doctor.run(write_config(tmp_path, f'[radio]\nport = "{h.sim.transport.link}"\n')))
        assert checks["radio"].status == doctor.FAIL and f"pid {holder.pid}" in checks["radio"].message
    finally:
        holder.kill()
        holder.wait()


def test_world_writable_config_fails(tmp_path):
    checks = by_name(doctor.run(write_config(tmp_path, mode=0o666)))
    assert checks["config permissions"].status == doctor.FAIL and "chmod 640" in checks["config permissions"].remedy


def test_invalid_config_is_the_only_check_and_fails(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[radio]\nport = 5\n')
    [check] = doctor.run(str(cfg))
    assert check.status == doctor.FAIL and "[radio] port" in check.message


def test_database_damage_and_backups_are_reported(tmp_path):
    (tmp_path / "s.db").write_bytes(b"not a database" * 100)
    checks = by_name(doctor.run(write_config(tmp_path, f'[backup]\ndir = "{tmp_path / "usb"}"\nplaintext = true\n')))
    assert checks["database"].status == doctor.FAIL and "no backup in" in checks["database"].remedy
    assert checks["backups"].status == doctor.FAIL and "no backup" in checks["backups"].message


def test_recent_backup_and_healthy_database_pass(tmp_path, age_key):
    Writer(tmp_path / "s.db").start().stop()
    bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=2, encrypt_to=[age_key[1]])
    conf = f'[backup]\ndir = "{tmp_path / "usb"}"\nrecipients = ["{age_key[1]}"]\n'
    checks = by_name(doctor.run(write_config(tmp_path, conf)))
    assert checks["database"].status == doctor.OK and checks["backups"].status == doctor.OK
    assert "encrypted" in checks["backups"].message
    old = bk.backups(tmp_path / "usb")[0]
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    assert by_name(doctor.run(write_config(tmp_path, conf)))["backups"].status == doctor.FAIL


def test_backups_that_anyone_holding_the_stick_can_read_are_not_called_ok(tmp_path, age_key):
    Writer(tmp_path / "s.db").start().stop()
    bk.backup(tmp_path / "s.db", tmp_path / "usb", keep=2, encrypt_to=[])
    plain = by_name(doctor.run(write_config(tmp_path, f'[backup]\ndir = "{tmp_path / "usb"}"\nplaintext = true\n')))
    assert plain["backups"].status == doctor.WARN and "NOT encrypted" in plain["backups"].message
    none = by_name(doctor.run(write_config(tmp_path, f'[backup]\ndir = "{tmp_path / "usb"}"\n')))
    assert none["backups"].status == doctor.FAIL and "backup-keygen" in none["backups"].remedy


def test_undervoltage_flags_are_read_from_vcgencmd(tmp_path):
    fake = tmp_path / "vcgencmd"
    for value, status in (("0x0", doctor.OK), ("0x50005", doctor.FAIL), ("0x50000", doctor.WARN)):
        fake.write_text(f"#!/bin/sh\necho throttled={value}\n")
        fake.chmod(0o755)
        assert doctor.undervoltage(str(fake)).status == status


@pytest.mark.parametrize("member_of, status, remedy", [
    ({"station", "dialout", "gpio"}, "ok", ""),
    ({"station", "dialout"}, "fail", "sudo adduser station gpio"),        # no buzzer, LEDs or button
    ({"station", "gpio"}, "fail", "sudo adduser station dialout"),        # no radio
    ({"station"}, "fail", "sudo adduser station dialout && sudo adduser station gpio"),
    (None, "unknown", "sudo ./install.sh creates it"),
])
def test_a_station_user_missing_a_group_is_told_the_command_that_adds_it(member_of, status, remedy):
    check = doctor.groups("station", membership=lambda user: member_of)
    assert (check.status, check.remedy) == (status, remedy)


def test_groups_of_a_real_user_are_read_from_the_system():
    """The same answer as `id -Gn`, an independent reading of the group database."""
    listed = set(subprocess.run(["id", "-Gn", "root"], capture_output=True, text=True, check=True).stdout.split())
    check = doctor.groups("root")
    missing = [g for g in ("dialout", "gpio") if g not in listed]
    assert check.status == (doctor.FAIL if missing else doctor.OK)
    assert all(g in check.message for g in missing)
    if check.status == doctor.FAIL:
        assert "sudo adduser root" in check.remedy


def test_command_prints_remedies_exits_1_and_speaks_json(tmp_path):
    cfg = write_config(tmp_path, f'[radio]\nport = "{tmp_path}/ttyUSB7"\n')
    out = CliRunner().invoke(cli, ["--config", cfg, "doctor"])
    assert out.exit_code == 1 and "[FAIL] radio" in out.output and "→ plug the radio in" in out.output
    as_json = CliRunner().invoke(cli, ["--config", cfg, "doctor", "--json"])
    data = json.loads(as_json.output)
    assert {"name", "status", "message", "remedy"} <= set(data[0]) and as_json.exit_code == 1
