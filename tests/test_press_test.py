"""A technician who has just provisioned a bracelet presses its button: the station must hear the
press over the mesh within the window, as a test — a chirp, never the room alarm, never relayed
anywhere — and record the bracelet as press-tested with the path the press took. A press outside
the window, or from another bracelet, stays a real alert."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner

from station.cli import cli
from station.radio.sim import SimRadio
from station.radio.virtual.scenarios import cast

from .conftest import register_cast, wait_until
from .test_radio_tools import write_config

AMINA = cast()["amina"].num


@pytest.fixture
def office(tmp_path, harness, factory):
    h = harness("idle", "pty", start=False, pin_factory=factory, gpio={"enabled": True})
    h.cfg = h.cfg.with_overrides(destinations=[{"name": "drills", "kind": "drill", "audience": "private",
                                                "path": str(tmp_path / "drills.jsonl")}])
    h.start()
    return h, write_config(tmp_path, h.sim.port, h.cfg.database_path)


class PressTest(threading.Thread):
    """`station bracelets press-test` running in the technician's terminal."""

    def __init__(self, config: str, node: str, window: float = 60):
        super().__init__(daemon=True)
        self.args = ["--config", config, "bracelets", "press-test", node, "--window", str(window), "--by", "tech-ana"]
        self.result = None

    def run(self) -> None:
        self.result = CliRunner().invoke(cli, self.args)


def waiting(h) -> bool:
    return h.count("SELECT COUNT(*) FROM press_tests WHERE state='waiting'") == 1


def pressed_during_the_test(h, config) -> PressTest:
    """The technician starts the test and Amina's button is pressed while it waits."""
    t = PressTest(config, f"!{AMINA:08x}")
    t.start()
    wait_until(lambda: waiting(h), 10, what="the test window")
    h.sim.stage.press("amina")
    t.join(30)
    return t


def test_a_press_during_the_test_chirps_is_recorded_with_its_path_and_is_never_relayed(office):
    h, config = office
    t = pressed_during_the_test(h, config)

    assert t.result.exit_code == 0, t.result.output
    assert "press-tested on" in t.result.output and "1 hop, SNR" in t.result.output
    [inc] = h.rows("SELECT * FROM incidents")
    assert (inc["press_test"], inc["drill"], inc["state"], inc["resolved_by"]) == (1, 1, "resolved", "press test")
    wait_until(lambda: h.station.indicators.chirps == 1, 5, what="the chirp")
    assert h.station.indicators.level == "none"                    # the room alarm never started
    [test] = h.rows("SELECT * FROM press_tests")
    assert (test["state"], test["hops"], test["incident_id"]) == ("passed", 1, inc["id"])
    assert test["snr"] is not None
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents WHERE relay_planned=1") == 1, 10,
               what="the relay to look at the incident")
    assert h.count("SELECT COUNT(*) FROM outbox") == 0
    listing = CliRunner().invoke(cli, ["--config", config, "bracelets", "list"]).output
    assert "passed" in listing and "1 hop" in listing


def test_once_the_test_has_passed_the_next_press_is_a_real_alert(office):
    h, config = office
    t = pressed_during_the_test(h, config)
    assert t.result.exit_code == 0, t.result.output

    h.sim.stage.pause(60)     # past the detection sensor's minimum_broadcast_secs (45 s)
    h.sim.stage.press("amina")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents WHERE press_test=0 AND state='open'") == 1, 10,
               what="the real alert")
    wait_until(lambda: h.station.indicators.level == "open", 5, what="the room alarm")


@pytest.mark.slow
def test_another_bracelets_press_during_a_test_is_a_real_alert(office):
    h, config = office
    t = PressTest(config, f"!{AMINA:08x}", window=10)
    t.start()
    wait_until(lambda: waiting(h), 10, what="the test window")
    h.sim.stage.press("bashir")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents WHERE press_test=0 AND state='open'") == 1, 10,
               what="bashir's alert")
    wait_until(lambda: h.station.indicators.level == "open", 5, what="the room alarm")
    t.join(30)
    assert t.result.exit_code == 1
    assert "no press from" in t.result.output and "station radio check" in t.result.output
    assert h.rows("SELECT state FROM press_tests")[0]["state"] == "expired"
    listing = CliRunner().invoke(cli, ["--config", config, "bracelets", "list"]).output
    assert "FAILED" in listing


def test_without_the_daemon_the_command_listens_on_the_radio_itself(tmp_path):
    sim = SimRadio("idle", speed=0, pty=str(tmp_path / "radio")).start(play=False)
    try:
        config = write_config(tmp_path, sim.port, tmp_path / "station.db")
        register_cast(tmp_path / "station.db", sim.stage.people)
        t = PressTest(config, f"!{AMINA:08x}")
        t.start()
        wait_until(lambda: sim.radio.client_ready.is_set(), 15, what="the command's handshake")
        import sqlite3
        wait_until(lambda: sqlite3.connect(tmp_path / "station.db").execute(
            "SELECT COUNT(*) FROM press_tests WHERE state='waiting'").fetchone()[0] == 1, 10, what="the window")
        sim.stage.press("amina")
        t.join(30)
        assert t.result.exit_code == 0, t.result.output
        assert "listens on the radio itself" in t.result.output and "press-tested on" in t.result.output
    finally:
        sim.stop()


def test_an_unregistered_node_cannot_be_press_tested(office):
    h, config = office
    result = CliRunner().invoke(cli, ["--config", config, "bracelets", "press-test", "!0badcafe"])
    assert result.exit_code == 1 and "not a registered bracelet" in result.output
    assert h.count("SELECT COUNT(*) FROM press_tests") == 0
