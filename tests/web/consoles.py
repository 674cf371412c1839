"""`station console` alone in its own process (no daemon), over a database a test has seeded."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from station import users
from station.storage.writer import Writer
from tests.conftest import free_port, listening, wait_until

PASSWORD = "a long enough secret"


def seed(db: Path, *statements: tuple[str, tuple]) -> None:
    """Coordinator `maria` (PASSWORD) and the given SQL, written through the station's writer."""
    w = Writer(db).start()

    def run(d):
        users.add(d, "maria", "coordinator", PASSWORD, time.time(), "test")
        for sql, params in statements:
            d.execute(sql, params)
    w.call(run)
    w.stop()


@contextmanager
def station_console(db: Path, console: str = "") -> Iterator[str]:
    """Yields the console's base URL while it runs; `console` adds lines to its [console] section."""
    port = free_port()
    cfg = db.with_name("console.toml")
    cfg.write_text(f'[storage]\ndatabase = "{db}"\n[gpio]\nenabled = false\n[console]\nport = {port}\n{console}\n')
    proc = subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "console"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(port), 15, what="console")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def open_alert(db: Path, num: int, *, duress: bool = False, drill: bool = False) -> int:
    """What the daemon stores when a registered bracelet's SOS arrives (and, with `duress`, when
    its cancel came with the duress PIN), written into the database the console reads."""
    from station import incidents, trust
    from station.decode.packets import Alert
    w = Writer(db).start()

    def run(d):
        verdict = trust.Verdict(trust.REGISTERED, trust.Proof(trust.KEY), True)
        iid = incidents.raise_alert(d, num, Alert("button", "SOS"), time.time(), packet_row=None, fold_window_s=0,
                                    drill=drill, verdict=verdict).incident_id
        if duress:
            check = incidents.cancel_request(d, num, time.time())
            incidents.apply_cancel(d, check, "duress", time.time())
        return iid
    try:
        return w.call(run)
    finally:
        w.stop()
