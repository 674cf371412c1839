"""A technician at the console, with no terminal: sees the station radio against the mesh profile,
configures it after a confirmation, downloads a sealed backup, starts press tests and checks of
bracelets over the mesh, and sees which bracelets run a firmware older than the office's minimum.
Coordinators and viewers see none of it and can do none of it."""

from __future__ import annotations

import re
import time

import pytest

from station import press_tests, registry, users
from station.radio import backup as radio_backup
from station.storage.writer import Writer
from web.app import create_app

from ..conftest import wait_until
from ..test_radio_tools import PROFILE
from .test_console_security import PASSWORD, login

AMINA = 0xB5A1E001        # registered by the harness (the scenario cast)


@pytest.fixture
def station(harness):
    """The daemon with its (virtual) radio still on its factory channel, and the console."""
    h = harness("idle", "pty", mesh=PROFILE)
    wait_until(lambda: h.count("SELECT COUNT(*) FROM station_state WHERE key='radio_info'") == 1,
               what="the radio's handshake")
    w = Writer(h.cfg.database_path).start()

    def seed(db):
        for role in users.ROLES:
            users.add(db, role, role, PASSWORD, time.time(), "test")
        registry.note_device(db, AMINA, "RAK4631", "2.6.11.60ec05e", time.time())
    w.call(seed)
    w.stop()
    app = create_app(h.cfg)
    app.config["TESTING"] = True
    return h, app


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.mark.parametrize("role", ["viewer", "coordinator"])
def test_only_technicians_and_admins_reach_the_radio_tools(station, role):
    h, app = station
    c = app.test_client()
    token = login(c, role)
    assert c.get("/technician/").status_code == 403
    assert "/technician" not in c.get("/").get_data(as_text=True)
    assert c.get("/api/radio").status_code == 403
    for url, data in (("/technician/configure", {"confirm": "yes"}), ("/technician/backup", {}),
                      (f"/technician/bracelets/{AMINA}/check", {}), (f"/technician/bracelets/{AMINA}/press-test", {})):
        assert c.post(url, data={**data, "csrf_token": token}).status_code == 403
    assert h.count("SELECT COUNT(*) FROM radio_jobs") == 0
    assert h.count("SELECT COUNT(*) FROM press_tests") == 0


@pytest.mark.slow          # seconds of real timing; the quick loop leaves it to the full run
def test_the_radio_is_configured_only_after_the_difference_is_shown_and_confirmed(station):
    h, app = station
    c = app.test_client()
    token = login(c, "technician")
    page = c.get("/technician/").get_data(as_text=True)
    assert "lora.hop_limit" in page and "channel.0.name" in page and "Kibera" in page
    assert "/technician" in c.get("/").get_data(as_text=True)

    r = c.post("/technician/configure", data={"csrf_token": token}, follow_redirects=True)
    assert "tick the box to confirm" in r.get_data(as_text=True)
    assert h.count("SELECT COUNT(*) FROM radio_jobs") == 0

    c.post("/technician/configure", data={"csrf_token": token, "confirm": "yes"})
    wait_until(lambda: h.count("SELECT COUNT(*) FROM radio_jobs WHERE kind='configure' AND state='done'") == 1, 60,
               what="the daemon's configure job")
    wait_until(lambda: "The radio matches the mesh profile." in c.get("/technician/").get_data(as_text=True), 30,
               what="the page to show the radio matching the profile")
    assert h.sim.radio.channels[0].settings.name == "Kibera"
    assert h.count("SELECT COUNT(*) FROM events WHERE action='radio configured' AND actor='console:technician'") == 1


@pytest.mark.slow
def test_a_backup_downloads_sealed_with_the_passphrase_and_opens_with_it(station):
    h, app = station
    c = app.test_client()
    token = login(c, "technician")
    r = c.post("/technician/backup", data={"csrf_token": token, "passphrase": "correct horse battery",
                                           "passphrase2": "correct horse batterx"}, follow_redirects=True)
    assert "the two passphrases differ" in r.get_data(as_text=True)

    r = c.post("/technician/backup", data={"csrf_token": token, "passphrase": "correct horse battery",
                                           "passphrase2": "correct horse battery"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Disposition"].startswith('attachment; filename="station-radio-')
    assert b"correct horse" not in r.data
    b = radio_backup.unseal(r.data, "correct horse battery")
    assert b.public_key == h.sim.radio.keys.public
    wait_until(lambda: h.station.link.connected, 30, what="the daemon to take its port back")
    assert h.count("SELECT COUNT(*) FROM events WHERE action='radio backed up' AND actor='console:technician'") == 1


def test_bracelets_show_their_state_and_take_press_tests_and_checks(station):
    h, app = station              # amina is registered, her bracelet provisioned with 2.6.11
    c = app.test_client()
    token = login(c, "technician")
    page = c.get("/technician/").get_data(as_text=True)
    assert "RAK4631 2.6.11.60ec05e" in page
    assert "older than the minimum 2.7.4: flash it" in page

    c.post(f"/technician/bracelets/{AMINA}/press-test", data={"csrf_token": token})
    [t] = h.rows("SELECT node_num, state, requested_by FROM press_tests")
    assert tuple(t) == (AMINA, "waiting", "console:technician")
    assert "waiting for a press" in c.get("/technician/").get_data(as_text=True)
    assert press_tests.WINDOW_S == 60
    api = c.get("/api/radio").get_json()
    [amina] = [b for b in api["bracelets"] if b["node_id"] == "!b5a1e001"]
    assert (amina["firmware"], amina["press_test"]) == ("2.6.11.60ec05e", "waiting")
    assert any(f["old"] and f["firmware"] == "2.6.11.60ec05e" for f in api["fleet"])

    c.post(f"/technician/bracelets/{AMINA}/check", data={"csrf_token": token, "fix": "yes"})
    [job] = h.rows("SELECT kind, args, requested_by FROM radio_jobs WHERE kind='bracelet_check'")
    assert job["requested_by"] == "console:technician" and '"fix": true' in job["args"]
    assert c.post("/technician/bracelets/12345/check", data={"csrf_token": token}).status_code == 404
