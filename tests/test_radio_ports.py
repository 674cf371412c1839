"""The radio is found and followed: plugged in after the station started (on the virtual radio),
back under another name after a replug, or never plugged into a station that has had one."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.config import validate
from station.daemon import Station
from station.radio.finder import PortInfo, RadioFinder
from station.radio.sim import SimRadio
from station.radio.virtual.bracelets import cast

from .conftest import register_cast, wait_until

P = cast()


def station_on(tmp_path: Path, port: str = "auto", **radio) -> Station:
    cfg = validate({"storage": {"database": str(tmp_path / "station.db")}, "gpio": {"enabled": False},
                    "radio": {"port": port, "scenario": "idle", "heartbeat_s": 0.5, "liveness_timeout_s": 2.0,
                              "handshake_timeout_s": 3.0, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, **radio}},
                   None, tmp_path)
    s = Station(cfg, sim_speed=0)
    s.auto_candidates = (str(tmp_path / "meshtastic"),)      # the udev name, as the test's own
    s.auto_globs = (str(tmp_path / "ttyUSB*"),)
    s.look_for_radio_every_s = 0.2
    return s


@pytest.fixture
def stations():
    made: list = []
    yield made
    for thing in made:
        thing.stop()


def test_a_radio_plugged_in_after_start_is_taken_at_once_and_its_alerts_are_real(tmp_path, stations):
    register_cast(tmp_path / "station.db")
    s = station_on(tmp_path).start()
    stations.append(s)
    assert s.sim is not None and s.ingest.drill            # nothing plugged in: the demo radio
    real = SimRadio("idle", speed=0, pty=str(tmp_path / "ttyUSB0")).start(play=False)
    stations.append(real)
    wait_until(lambda: s.sim is None and s.link.connected and s.link.port == str(tmp_path / "ttyUSB0"), 20,
               what="the station to move to the real radio")
    real.stage.press("amina")
    db = s.writer.db
    wait_until(lambda: db.execute("SELECT COUNT(*) FROM incidents WHERE drill=0").fetchone()[0] == 1, 10,
               what="a real (not drill) alert from the real radio")


def test_a_radio_that_comes_back_under_another_name_is_followed(tmp_path, stations):
    real = SimRadio("idle", speed=0, pty=str(tmp_path / "ttyUSB0")).start(play=False)
    stations.append(real)
    s = station_on(tmp_path).start()
    stations.append(s)
    wait_until(lambda: s.link.connected, 10, what="connected")
    assert s.sim is None and s.link.port.endswith("ttyUSB0")
    real.transport.unplug()
    real.transport.link = tmp_path / "ttyUSB1"      # the kernel gave it the next number
    real.transport.plug()
    wait_until(lambda: s.link.connected and s.link.port.endswith("ttyUSB1"), 20, what="the radio followed")
    assert s.link.state.connects == 2


def test_a_station_that_has_had_a_real_radio_never_falls_back_to_demo_drills(tmp_path, stations):
    real = SimRadio("idle", speed=0, pty=str(tmp_path / "ttyUSB0")).start(play=False)
    s = station_on(tmp_path).start()
    wait_until(lambda: s.link.connected and s.link.radio_info is not None, 10, what="connected")
    s.writer.call(lambda db: None)
    wait_until(lambda: s.writer.db.execute("SELECT 1 FROM station_state WHERE key='real_radio_seen'").fetchone(),
               10, what="the real radio remembered")
    s.stop()
    real.stop()
    again = station_on(tmp_path).start()      # restarted with the radio unplugged
    stations.append(again)
    assert again.sim is None and not again.ingest.drill
    wait_until(lambda: again.link.state.status == "down", 10, what="the link to say it waits")
    assert "no radio found" in again.link.state.error


@pytest.mark.parametrize("ports, expected", [
    # The same serial number under another name: the same radio.
    ([PortInfo("/dev/ttyUSB1", 0x10C4, 0xEA60, "0001")], "/dev/ttyUSB1"),
    # Another radio of the same model (another serial number) is not followed.
    ([PortInfo("/dev/ttyUSB1", 0x10C4, 0xEA60, "0002")], None),
    # Not a radio at all.
    ([PortInfo("/dev/ttyUSB1", 0x1546, 0x01A7, "0001")], None),
])
def test_an_explicit_port_follows_its_own_radio_and_no_other(ports, expected):
    f = RadioFinder("/dev/ttyUSB0-gone", lister=lambda: ports)
    f.identity = PortInfo("/dev/ttyUSB0-gone", 0x10C4, 0xEA60, "0001")
    assert f.find() == expected


def test_auto_takes_a_known_radio_by_its_usb_ids_and_ignores_a_gps(tmp_path):
    gps, radio = PortInfo(str(tmp_path / "gps"), 0x1546, 0x01A7), PortInfo(str(tmp_path / "radio"), 0x239A, 0x8029)
    assert RadioFinder("auto", candidates=(), lister=lambda: [gps, radio]).find() == radio.device
    assert RadioFinder("auto", candidates=(), lister=lambda: [gps]).find() is None


def test_the_usb_ids_are_the_udev_rules(tmp_path):
    import re

    from station.radio.finder import RADIO_USB_IDS
    rules = (Path(__file__).resolve().parent.parent / "hardware" / "udev" / "99-station.rules").read_text()
    radios = rules.split("# --- GPS")[0]
    ids = {(int(v, 16), int(p, 16)) for v, p in re.findall(r'idVendor}=="(\w+)".*?idProduct}=="(\w+)"', radios)}
    assert ids == set(RADIO_USB_IDS)


def test_doctor_never_reports_a_dead_daemons_last_radio_state_as_live(tmp_path, stations):
    from station import doctor
    real = SimRadio("idle", speed=0, pty=str(tmp_path / "ttyUSB0")).start(play=False)
    stations.append(real)
    s = station_on(tmp_path, port=str(tmp_path / "ttyUSB0")).start()
    wait_until(lambda: s.link.connected, 10, what="connected")
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[radio]\nport = "{tmp_path / "ttyUSB0"}"\n[storage]\ndatabase = "{tmp_path / "station.db"}"\n'
                   '[gpio]\nenabled = false\n')
    cfg.chmod(0o640)
    wait_until(lambda: {c.name: c for c in doctor.run(str(cfg))}["radio"].status == doctor.OK, 10,
               what="doctor to see the live link")
    s.stop()                                        # or killed: its snapshot stays behind
    check = {c.name: c for c in doctor.run(str(cfg))}["radio"]
    assert check.status != doctor.OK and "not known while the daemon is not running" in check.message
