"""Shared fixtures: a real station (real meshtastic library, real SQLite, real pty or TCP) on a
virtual radio that the test controls, and the corpora in ../shared."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from station import config
from station.daemon import Station
from station.radio.sim import SimRadio
from station.radio.virtual.bracelets import register_cast  # noqa: F401  (tests import it from here)

REPO = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("STATION_CORPORA", REPO.parent / "shared" / "corpora"))


@pytest.fixture(scope="session")
def corpora() -> Path:
    if not CORPORA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"the real-data corpora are missing at {CORPORA} (set STATION_CORPORA)")
        pytest.skip(f"real-data corpora not found at {CORPORA} (set STATION_CORPORA)")
    return CORPORA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def make_config(tmp_path: Path, lists: dict | None = None, **sections) -> config.Config:
    base = {
        "storage": {"database": str(tmp_path / "station.db")},
        "gpio": {"enabled": False},
        "radio": {"heartbeat_s": 0.5, "liveness_timeout_s": 2.0, "handshake_timeout_s": 3.0,
                  "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "ready_timeout_s": 5.0},
        "receipts": {"min_interval_s": 0.0, "ack_timeout_s": 5.0, "retry_after_s": 0.5},
        # The watch raises alarms about silence: only the tests of it (tests/test_watch.py) turn it on.
        "watch": {"enabled": False},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    base.update(lists or {})          # arrays of tables: [[destinations]], [[responders]], ...
    return config.validate(base, None, tmp_path)


class TimeMachine:
    """Time passing faster than it does: the station's wall and monotonic clocks move ahead
    together when the test says so (so the clock sees no step), for chains of minutes in no time."""

    def __init__(self):
        self.ahead = 0.0

    def time(self) -> float:
        return time.time() + self.ahead

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    def advance(self, seconds: float) -> None:
        self.ahead += seconds


class Harness:
    """A station on a virtual radio: `h.sim.radio` is the radio, `h.db()` a read connection."""

    def __init__(self, tmp_path: Path, scenario: str, transport: str, *, register: bool = True,
                 corpus_dir: Path | None = None, start: bool = True, pin_factory=None,
                 firmware: str | None = None, radio: dict | None = None, system_time=None,
                 time_machine: TimeMachine | None = None, lists: dict | None = None, **sections):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.cfg = make_config(tmp_path, lists, **sections)
        self.time_machine = time_machine
        # Acknowledgements and reboots at test speed; what they mean is the firmware's.
        options = {"retransmit_s": 0.2, "reboot_scale": 0.05, **(radio or {})}
        self.sim = SimRadio(scenario, speed=0, tcp=0 if transport == "tcp" else None,
                            pty=None if transport == "tcp" else str(tmp_path / "radio"),
                            corpus_dir=corpus_dir, start_delay_s=0.0, firmware=firmware, **options)
        if register:
            register_cast(self.cfg.database_path, self.sim.stage.people)
        self.pin_factory = pin_factory
        self.system_time = system_time        # a wall clock the test can set (tests/test_clock_steps.py)
        self.station: Station | None = None
        if start:
            self.start()

    def start(self, play: bool = True) -> "Harness":
        # The radio is plugged in first; the scenario plays once the station is connected, since
        # a real radio keeps only 8 or 32 packets for a host that is not there yet.
        self.sim.start(play=False)
        self.cfg = self.cfg.with_overrides(radio={"port": self.sim.port})
        station = Station(self.cfg, pin_factory=self.pin_factory)
        if self.system_time is not None:
            station.system_time = self.system_time
        if self.time_machine is not None:
            station.system_time, station.monotonic = self.time_machine.time, self.time_machine.monotonic
        self.station = station.start()
        assert self.station.link.wait_connected(10), self.station.link.state
        if play:
            self.sim.play()
        return self

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until the scenario has played and everything it sent is committed: the station
        has read every packet the radio wrote, the library has published them, and the writer
        has committed them and what they caused (on a busy machine each step can lag seconds)."""
        import threading

        from meshtastic import publishingThread
        wait_until(self.sim.done.is_set, timeout, what="scenario to finish")
        station, radio = self.station, self.sim.radio
        wait_until(lambda: not radio.pending() and station.link.packets_in >= radio.counters.packets_sent,
                   timeout, what="the station to read every packet the radio wrote")
        published = threading.Event()
        publishingThread.queueWork(published.set)          # in order: after every packet read so far
        assert published.wait(timeout), "the library's publishing thread did not catch up"
        # Queued behind them: once it is committed, so are they, and what their commits set off
        # (receipts) is already in the writer's queue, where stable() below sees it.
        station.writer.call(lambda db: None, timeout)
        # Cancels' PINs are checked on a thread of their own, then written: wait for those too.
        wait_until(lambda: station.ingest.checks.pending() == 0, timeout, what="the PIN checks")
        station.writer.call(lambda db: None, timeout)
        last = [-1, 0.0]

        def stable() -> bool:
            n = self.count("SELECT COUNT(*) + COALESCE(SUM(duplicates),0) FROM packets") + \
                self.count("SELECT COUNT(*) FROM rejects")
            if (n != last[0] or self.sim.radio.pending() or self.station.writer.pending()
                    or self.station.ingest.checks.pending()):
                last[:] = [n, time.monotonic()]
                return False
            return time.monotonic() - last[1] > 0.1
        wait_until(stable, timeout, what="ingestion to settle")

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.cfg.database_path)
        conn.row_factory = sqlite3.Row
        return conn

    def count(self, sql: str, params: tuple = ()) -> int:
        with self.db() as c:
            return c.execute(sql, params).fetchone()[0]

    def rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self.db() as c:
            return c.execute(sql, params).fetchall()

    def stop(self) -> None:
        if self.station is not None:
            self.station.stop()
            self.station = None
        self.sim.stop()


# The firmware releases the virtual radio can play (station/radio/virtual/firmware.py).
FIRMWARE = ["2.6.11", "2.7.3", "2.7.26", "2.8"]
QUIET_KEY = pytest.StashKey[tuple]()


def pytest_configure(config):
    """The daemons the tests start keep their status snapshots in one folder for this run (and
    the processes they start inherit it), not in the machine's shared runtime folder."""
    import tempfile

    from station import at_rest
    # Files the tests write (configs, keys, databases) are created as a station creates them.
    os.umask(at_rest.UMASK)
    if "STATION_RUNTIME_DIR" not in os.environ:
        os.environ["STATION_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="station-run-")
    # A command run with no config file uses the user's data folder: the tester's own stays untouched.
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="station-data-")


def pytest_collection_modifyitems(config, items):
    """The quick loop (`-m "not slow"`) runs every behaviour once, on the newest released firmware
    over a pty; its repeats on every other firmware and over TCP are `slow`, as are the tests
    marked so (kill -9 loops, reboots, flashing, mesh round trips). CI runs them all."""
    from station.radio.virtual.firmware import DEFAULT
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("firmware", DEFAULT) != DEFAULT or params.get("transport", "pty") != "pty":
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session):
    """Tests marked `background` need minutes of real time: their subject starts as soon as the
    session knows it will run them, and they run last, so the wait overlaps the other tests."""
    if not any(item.get_closest_marker("background") for item in session.items):
        return
    session.items.sort(key=lambda item: item.get_closest_marker("background") is not None)
    import tempfile
    work = Path(tempfile.mkdtemp(prefix="quiet-"))
    sim = SimRadio("idle", speed=0, pty=str(work / "radio"), firmware="2.6.11").start()
    cfg = config.validate({"storage": {"database": str(work / "station.db")}, "gpio": {"enabled": False},
                           "radio": {"port": sim.port}}, None, work)
    station = Station(cfg).start()
    session.config.stash[QUIET_KEY] = (station, sim, time.monotonic(), work)


def pytest_sessionfinish(session):
    held = session.config.stash.get(QUIET_KEY, None)
    if held is not None:
        import shutil
        station, sim, _, work = held
        station.stop()
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def quiet_station(request):
    held = request.config.stash.get(QUIET_KEY, None)
    if held is None:
        pytest.fail("the background station was not started (pytest_collection_finish)")
    return held[:3]


@pytest.fixture
def factory():
    """gpiozero's mock pins for the buzzer, LEDs and button, for one test."""
    f = MockFactory(pin_class=MockPWMPin)
    previous = Device.pin_factory
    Device.pin_factory = f
    yield f
    Device.pin_factory = previous
    f.reset()


@pytest.fixture
def harness(tmp_path):
    made: list[Harness] = []

    def make(scenario: str = "idle", transport: str = "pty", **kw) -> Harness:
        h = Harness(tmp_path / f"h{len(made)}", scenario, transport, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


@pytest.fixture
def age_key(tmp_path) -> tuple[Path, str]:
    """An age identity made off the station (a folder of its own) and its public key."""
    import shutil
    if shutil.which("age") is None or shutil.which("age-keygen") is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's age is needed for the backup tests (.ci/run installs it)")
        pytest.skip("age is not installed (sudo apt-get install age)")
    from station.storage import age
    off_site = tmp_path / "office-safe"
    off_site.mkdir()
    identity = off_site / "station-backup.key"
    return identity, age.keygen(identity)
