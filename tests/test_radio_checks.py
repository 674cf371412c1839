"""What the station tells the office about its radio, from the radio's own handshake: firmware,
channel, keys, and each combination with the bracelets that cannot work, with its remedy, in
`station status`, `station doctor` and the console's health page."""

from __future__ import annotations

import json
import os
import time

from click.testing import CliRunner

from station import doctor, users
from station.cli import cli
from station.radio.virtual.bracelets import OFFICE_CHANNEL, public_channel
from station.storage.writer import Writer
from web import create_app

from .conftest import register_cast, wait_until


def config_file(h) -> str:
    path = h.cfg.database_path.parent / "station.toml"
    path.write_text(f'[storage]\ndatabase = "{h.cfg.database_path}"\n[gpio]\nenabled = false\n'
                    f'[radio]\nport = "{h.sim.port}"\n')
    os.chmod(path, 0o640)
    return str(path)


def radio_known(h):
    return lambda: h.count("SELECT COUNT(*) FROM station_state WHERE key='radio_info'") == 1


def health_page(h) -> str:
    w = Writer(h.cfg.database_path).start()
    w.call(lambda db: users.add(db, "ana", "viewer", "correct horse battery", time.time(), "test"))
    w.stop()
    app = create_app(h.cfg)
    client = app.test_client()
    import re
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"name": "ana", "password": "correct horse battery", "csrf_token": token})
    return client.get("/health").get_data(as_text=True)


def test_a_well_set_radio_is_reported_with_its_firmware_and_nothing_to_fix(harness):
    h = harness("idle", "pty")
    wait_until(radio_known(h), what="the radio's handshake to be recorded")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM events WHERE action='radio given bracelet key'") == 3,
               what="the bracelets made favourites in the radio")
    wait_until(lambda: "radio setup" in {c.name for c in doctor.run(config_file(h))}
               and {c.name: c for c in doctor.run(config_file(h))}["radio setup"].status == doctor.OK,
               what="the doctor to see the keys given")
    out = CliRunner().invoke(cli, ["--config", config_file(h), "status"]).output
    assert "2.7.26.54e0d8d on HELTEC_V3, EU_868 LongFast, primary channel Natalia (private)" in out
    check = {c.name: c for c in doctor.run(config_file(h))}["radio setup"]
    assert "firmware 2.7.26.54e0d8d" in check.message and "every bracelet's key" in check.message
    assert "nothing to report" in health_page(h)


def test_a_public_channel_old_firmware_and_a_stock_t1000e_are_each_named_with_a_remedy(harness):
    h = harness("t1000e", "pty", firmware="2.6.11", register=False, start=False,
                radio={"channel_settings": [public_channel(), OFFICE_CHANNEL]})
    register_cast(h.cfg.database_path, h.sim.stage.people, names=("amina", "dara"))
    h.start()
    h.settle()
    wait_until(radio_known(h), what="the radio's handshake to be recorded")
    result = CliRunner().invoke(cli, ["--config", config_file(h), "doctor", "--json"])
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert checks["radio setup: public-primary"]["status"] == "fail"
    assert "private primary channel" in checks["radio setup: public-primary"]["remedy"]
    assert checks["radio setup: old-firmware"]["status"] == "warn"
    assert "2.7.4" in checks["radio setup: old-firmware"]["remedy"]
    assert checks["radio setup: t1000e-stock"]["status"] == "fail"
    assert "Dara N." in checks["radio setup: t1000e-stock"]["message"]
    out = CliRunner().invoke(cli, ["--config", config_file(h), "status"]).output
    assert "primary channel LongFast (PUBLIC)" in out and "problem(s)" in out
    page = health_page(h)
    assert page.count('class="finding finding-fail"') == 2
    assert "stock SenseCAP T1000-E" in page and "Dara N. (!b5a1e004)" in page


def test_a_bracelet_registered_while_the_station_runs_reaches_the_radios_node_database(harness):
    h = harness("idle", "pty", register=False, start=False)
    register_cast(h.cfg.database_path, h.sim.stage.people, names=("amina",))
    h.start()
    h.station.key_check_every_s = 0.2
    wait_until(lambda: h.sim.radio.nodedb.get(h.sim.stage.amina.num).is_favorite, what="Amina in the radio")
    radio = h.sim.radio
    radio.nodedb.remove(h.sim.stage.bashir.num)          # never heard by this radio
    register_cast(h.cfg.database_path, h.sim.stage.people, names=("bashir",))
    wait_until(lambda: radio.nodedb.key_of(h.sim.stage.bashir.num) == h.sim.stage.bashir.public_key, 10,
               what="Bashir's key in the radio")
    assert radio.nodedb.get(h.sim.stage.bashir.num).is_favorite
