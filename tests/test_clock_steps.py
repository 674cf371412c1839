"""A wall clock that steps: a Pi has no real-time clock, so its time jumps at every boot that
later finds NTP or GPS, and anyone with a shell can run `date -s`. What the wearer and the
coordinators rely on must not move with it: a second press is the same alert, an alert held for
30 minutes is held for 30 minutes, a retry due in a second is tried within seconds, a platform's
429 blocks it for as long as the platform said. And the times the station shows are the corrected
ones, for the daemon, the commands and the console alike."""

from __future__ import annotations

import sqlite3
import time

import pytest

from station import runtime
from station.clock import StationClock
from station.storage import timebase
from station.storage.migrations import migrate
from station.storage import db as dbmod

from .conftest import wait_until
from .relay.conftest import AMINA, relay  # noqa: F401  (a fixture)

STEPS = [pytest.param(7200.0, id="2h-ahead"), pytest.param(-7200.0, id="2h-back", marks=pytest.mark.slow),
         pytest.param(86400.0, id="1day-ahead", marks=pytest.mark.slow), pytest.param(-86400.0, id="1day-back")]


class WallClock:
    """The system clock as `date -s` leaves it: the real time plus whatever it was set by."""

    def __init__(self):
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


@pytest.mark.parametrize("step", STEPS)
def test_a_second_press_after_the_clock_stepped_is_the_same_alert_at_corrected_times(harness, step):
    wall = WallClock()
    h = harness("idle", "pty", system_time=wall)
    pressed_at = time.time()
    h.sim.stage.press("amina")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents") == 1, 15, what="her alert")
    wall.shift = step
    wait_until(lambda: h.station.clock.steps_taken == 1, 15, what="the station to take the step")
    h.sim.stage.clock += 60         # her bracelet's own clock: a press a minute later, past its
    h.sim.stage.press("amina")      # detection sensor's minimum interval
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents WHERE last_press_at > opened_at + 0.01") == 1, 15,
               what="her second press folded into the alert")
    h.settle()
    assert h.count("SELECT COUNT(*) FROM incidents") == 1, "the second press opened a new alert"
    [(opened, last)] = h.rows("SELECT opened_at, last_press_at FROM incidents")
    # Both on the corrected clock: the first moved by the step, the second stamped after it.
    assert opened == pytest.approx(pressed_at + step, abs=10)
    assert 0 < last - opened < 60
    [(detail,)] = h.rows("SELECT detail FROM events WHERE action='clock stepped'")
    assert f"{step:+.0f} s" in detail
    snapshot = h.station.status_snapshot("running")["clock"]
    assert snapshot["pending_step_s"] == 0 and abs(snapshot["minus_system_s"]) < 1.5


@pytest.mark.parametrize("step", [STEPS[0], STEPS[2]])
def test_an_alert_held_30_minutes_for_withholding_is_not_published_when_the_clock_jumps_ahead(relay, step):  # noqa: F811
    wall = WallClock()
    h = relay(kinds=("x",), clock=StationClock(system_time=wall, on_step=lambda s: None)).start()
    h.bracelet(publish="verified", approvals=5, publish_after_min=30)
    h.incident(opened_at=h.clock.now())
    h.worker.wake()
    h.wait_states({("x", "alert"): "held"})
    wall.shift = step
    h.quiet()                                   # the worker runs on while the step is being seen
    assert timebase.take_step(h.clock, h.writer)[0] == pytest.approx(step, abs=2)
    h.quiet()
    assert h.states() == {("x", "alert"): "held"} and h.x.requests == []
    [opened] = [r["opened_at"] for r in h.rows("SELECT opened_at FROM incidents")]
    assert opened + 30 * 60 - h.clock.now() == pytest.approx(30 * 60, abs=30)


@pytest.mark.parametrize("step", [STEPS[1], STEPS[3]])
def test_a_wait_of_seconds_stays_seconds_when_the_clock_goes_back(relay, step):  # noqa: F811
    """The partner's webhook asks for 5 s (429, Retry-After): her alert goes out seconds later,
    not 2 hours or a day later because the clock was set back meanwhile."""
    wall = WallClock()
    h = relay(kinds=("webhook",), clock=StationClock(system_time=wall, on_step=lambda s: None)).start()
    h.bracelet(publish="at-once")
    h.webhook.fail_next(status=429, reset_in_s=5)
    h.incident(opened_at=h.clock.now())
    h.worker.wake()
    wait_until(lambda: h.rows("SELECT blocked_until FROM destination_limits"), 10, what="the webhook's 429")
    wall.shift = step
    timebase.take_step(h.clock, h.writer)
    h.worker.wake()
    h.wait_states({("webhook", "alert"): "sent"}, timeout=20)


def test_a_429_blocks_for_as_long_as_the_platform_said_even_when_our_clock_is_hours_off(relay):  # noqa: F811
    wall = WallClock()
    wall.shift = -7200.0                        # booted without NTP: two hours behind X
    h = relay(kinds=("x",), clock=StationClock(system_time=wall)).start()
    h.bracelet(publish="at-once")
    h.x.fail_next(status=429, reset_in_s=900)
    h.incident(opened_at=h.clock.now())
    h.worker.wake()
    wait_until(lambda: h.rows("SELECT blocked_until FROM destination_limits"), 10, what="X to be blocked")
    [(until,)] = [tuple(r.values()) for r in h.rows("SELECT blocked_until FROM destination_limits")]
    assert until - h.clock.now() == pytest.approx(900, abs=30)     # not 2 h 15 min


def test_a_stopped_daemons_status_never_looks_fresh_because_the_clock_went_back(tmp_path, monkeypatch):
    db = tmp_path / "station.db"
    monkeypatch.setenv("STATION_RUNTIME_DIR", str(tmp_path / "run"))
    runtime.write_status(db, {"station": {"phase": "running"}, "clock": {"minus_system_s": 0.0}})
    snap, mtime = runtime.read_status(db)
    assert runtime.age_of(snap, mtime + 7200) < 5          # a wall clock 2 h back would say "-2 h old"
    assert runtime.age_of(snap, mtime - 7200) < 5          # 2 h ahead: "2 h old", a live daemon dead
    snap["written"]["monotonic"] -= 120
    assert runtime.age_of(snap, mtime) == pytest.approx(120, abs=5)


def test_every_stamp_in_the_schema_is_either_moved_with_a_step_or_a_devices_own_time(tmp_path):
    """A column added later and forgotten here would keep the old clock after a step."""
    db = dbmod.connect(tmp_path / "s.db")
    migrate(db)
    known = {(t, c) for group in (timebase.PAST, timebase.DUE, timebase.DEVICE, timebase.APPEND_ONLY)
             for t, cols in group.items() for c in cols}
    stamps = {(t, c[1]) for t in db.table_names() for c in db.execute(f"PRAGMA table_info({t})").fetchall()
              if c[1] in ("at", "last_login") or c[1].endswith(("_at", "_until", "_time", "_heard", "_since"))}
    assert stamps - known == set()
    assert known - stamps == set()


def test_a_step_moves_this_runs_times_and_leaves_earlier_runs_alone(tmp_path):
    path = tmp_path / "s.db"
    db = dbmod.connect(path)
    migrate(db)
    db.execute("INSERT INTO users (name, role, password_hash, created_at, locked_until) "
               "VALUES ('old', 'viewer', 'x', 1000, NULL)")
    db.execute("INSERT INTO users (name, role, password_hash, created_at, locked_until) "
               "VALUES ('new', 'viewer', 'x', 5000, 5300)")
    db.execute("INSERT INTO events (incident_id, at, actor, action, detail) VALUES (NULL, 5000, 'x', 'as written', '')")
    moved = timebase.rebase(db, 7200.0, since=4000.0, upto=5100.0)
    with sqlite3.connect(path) as c:
        got = {n: (a, u) for n, a, u in c.execute("SELECT name, created_at, locked_until FROM users")}
        assert got == {"old": (1000, None), "new": (12200, 12500)}
        assert c.execute("SELECT at FROM events").fetchone() == (5000,)     # the log as it was written
    assert moved == 2


def test_a_coordinator_acknowledging_from_the_command_line_is_stamped_on_the_stations_clock(tmp_path, monkeypatch):
    """The daemon runs on GPS time two hours ahead of a system clock that never found NTP: an
    acknowledgement typed at the terminal must not land two hours before the alert it answers."""
    from click.testing import CliRunner

    from station.cli import cli
    monkeypatch.setenv("STATION_RUNTIME_DIR", str(tmp_path / "run"))
    path = tmp_path / "station.db"
    db = dbmod.connect(path)
    migrate(db)
    opened = time.time() + 7200
    db.execute("INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust) "
               "VALUES (?, ?, ?, 'alert_app', 'open', 'registered')", (AMINA, opened, opened))
    runtime.write_status(path, {"station": {"phase": "running"}, "clock": {"minus_system_s": 7200.0}})
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{path}"\n[gpio]\nenabled = false\n')
    cfg.chmod(0o640)
    out = CliRunner().invoke(cli, ["--config", str(cfg), "alerts", "ack", "1", "--by", "fatou"])
    assert out.exit_code == 0, out.output
    [(acked,)] = db.execute("SELECT acknowledged_at FROM incidents").fetchall()
    assert acked - opened == pytest.approx(0, abs=30)


def test_a_clock_set_back_while_the_station_was_off_leaves_a_lockout_the_time_it_had_left(harness):
    """A Pi restores its last saved time at boot: two hours behind what the station wrote
    before it stopped. A coordinator locked out for five minutes stays locked five minutes, not
    two hours and five."""
    wall = WallClock()
    h = harness("idle", "pty", start=False, system_time=wall)
    with h.db() as c:
        c.execute("INSERT INTO events (incident_id, at, actor, action, detail) VALUES (NULL, ?, 'x', 'last', '')",
                  (time.time(),))
        c.execute("INSERT INTO users (name, role, password_hash, created_at, locked_until) "
                  "VALUES ('fatou', 'coordinator', 'x', ?, ?)", (time.time(), time.time() + 300))
    wall.shift = -7200.0
    h.start()
    [(until,)] = h.rows("SELECT locked_until FROM users")
    assert until - h.station.clock.now() == pytest.approx(300, abs=30)
    assert h.count("SELECT COUNT(*) FROM events WHERE action='clock behind the database'") == 1
