"""The station radio's serial port for a technician's tool that needs it itself (a backup, a
restore, a flash), from the command line or the console: while the daemon runs, it owns the port,
so it is asked to lend it (a radio job) and to take it back afterwards; it takes it back by itself
when the loan runs out."""

from __future__ import annotations

import contextlib
from typing import Iterator

from station import queries
from station.radio import jobs


class LendRefused(Exception):
    """The daemon runs but did not lend the port; the message says why."""


@contextlib.contextmanager
def port_lent(db, by: str, seconds: float) -> Iterator[bool]:
    """Yields whether the daemon lent the port (False: no daemon runs, the port is free)."""
    lent = False
    if queries.status(db)["daemon_running"]:
        result = jobs.wait(db, jobs.submit(db, "lend", {"seconds": seconds}, by), 30)
        if result["state"] != "done":
            raise LendRefused(f"the daemon did not lend the radio's port: {result.get('error', '?')}")
        lent = True
    try:
        yield lent
    finally:
        if lent:
            jobs.wait(db, jobs.submit(db, "take_back", {}, by), 30)
