"""The Backups page: a technician sees the backups on the stick and takes one now, sealed to the
keys kept off the station; without those keys nothing readable is written; a coordinator or a
viewer cannot take one."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from station import users
from station.config import validate
from station.storage import backup as bk
from station.storage.writer import Writer
from web import create_app

from .test_console_security import PASSWORD, login


def _app(tmp_path, **backup):
    path = tmp_path / "s.db"
    w = Writer(path).start()
    w.call(lambda d: [users.add(d, r, r, PASSWORD, time.time(), "test") for r in users.ROLES])
    w.stop()
    a = create_app(validate({"storage": {"database": str(path)}, "backup": backup}, None, tmp_path))
    a.config["TESTING"] = True
    return a


def _recipient(tmp_path) -> str:
    key = tmp_path / "backup.key"
    out = subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True)
    return re.search(r"(age1[0-9a-z]+)", out.stderr + out.stdout).group(1)


def test_a_technician_takes_a_sealed_backup_and_sees_it_listed(tmp_path):
    stick = tmp_path / "stick"
    stick.mkdir()              # the stick, mounted
    a = _app(tmp_path, dir=str(stick), recipients=[_recipient(tmp_path)])
    c = a.test_client()
    token = login(c, "technician")
    assert "No backup yet." in c.get("/backups/").get_data(as_text=True)
    r = c.post("/backups/now", data={"csrf_token": token}, follow_redirects=True)
    page = r.get_data(as_text=True)
    made = bk.backups(stick)
    assert len(made) == 1 and made[0].name.endswith(".db.age") and made[0].name in page
    assert "backup written and verified" in page and "Sealed to 1 key kept" in page
    assert b"SQLite format 3" not in made[0].read_bytes()[:100]


def test_without_keys_nothing_readable_is_written(tmp_path):
    stick = tmp_path / "stick"
    a = _app(tmp_path, dir=str(stick))
    c = a.test_client()
    token = login(c, "admin")
    r = c.post("/backups/now", data={"csrf_token": token}, follow_redirects=True)
    assert "no [backup] recipients" in r.get_data(as_text=True)
    assert not stick.exists() or bk.backups(stick) == []


def test_a_missing_stick_is_said_plainly(tmp_path):
    a = _app(tmp_path, dir=str(tmp_path / "not-mounted"), plaintext=True)
    c = a.test_client()
    login(c, "technician")
    assert "is the USB stick plugged in and mounted?" in c.get("/backups/").get_data(as_text=True)


@pytest.mark.parametrize("role", ["coordinator", "viewer"])
def test_coordinators_and_viewers_cannot_take_backups(tmp_path, role):
    a = _app(tmp_path, dir=str(tmp_path / "stick"), plaintext=True)
    c = a.test_client()
    token = login(c, role)
    assert c.post("/backups/now", data={"csrf_token": token}).status_code == 403
    assert not (tmp_path / "stick").exists()
