"""Months on an SD card: an idle station keeps what its status shows fresh without writing to the
card (issue 14 measured 400 MB and 43,000 fsyncs a day from a status snapshot stored every 2 s).
bench/sd_card.py measures the bytes and fsyncs themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from station import queries, runtime
from station.storage import db as dbmod

from .conftest import wait_until


@pytest.mark.slow          # seconds of real timing; the quick loop leaves it to the full run
def test_an_idle_station_keeps_its_status_fresh_without_a_single_commit(harness):
    h = harness("idle", "pty")
    station = h.station
    station.status_every_s = 0.1
    station.writer.idle_checkpoint_s = 0.2
    wal = Path(str(h.cfg.database_path) + "-wal")
    # Start-up is written (migrations, the radio's details, keys given to it); then quiet.
    wait_until(lambda: wal.exists() and wal.stat().st_size == 0, 15, what="start-up to be written and checkpointed")
    commits = station.writer.stats.commits
    seen: set[float] = set()

    def rewritten_five_times() -> bool:
        got = runtime.read_status(h.cfg.database_path)
        if got:
            seen.add(got[1])
        return len(seen) >= 5
    wait_until(rewritten_five_times, 15, what="five status snapshots")
    assert station.writer.stats.commits == commits and wal.stat().st_size == 0
    # What the office reads is the live snapshot, from RAM, not the database.
    status = queries.status(dbmod.connect(h.cfg.database_path, create=False))
    assert status["daemon_running"] and status["radio"]["status"] == "connected"
    assert runtime.status_path(h.cfg.database_path).parent != Path(h.cfg.database_path).parent


def test_a_quiet_database_has_its_wal_emptied_so_that_reads_stop_dirtying_the_shm_page(harness):
    """While the WAL holds frames, each read transaction rewrites its read mark in the mmap'd
    -shm file, which the kernel writes to the card every 30 s."""
    h = harness("sos", "pty")
    h.settle()
    h.station.writer.idle_checkpoint_s = 0.2
    wal = Path(str(h.cfg.database_path) + "-wal")
    assert wal.stat().st_size > 0          # the alert's commit went to the WAL
    wait_until(lambda: wal.stat().st_size == 0, 15, what="the idle writer to empty the WAL")
    assert h.count("SELECT COUNT(*) FROM incidents") == 1   # checkpointed into the database, not lost


def test_a_stopped_station_reads_as_not_running(harness):
    h = harness("idle", "pty")
    wait_until(lambda: runtime.read_status(h.cfg.database_path), 10, what="a status snapshot")
    h.stop()
    status = queries.status(dbmod.connect(h.cfg.database_path, create=False))
    assert not status["daemon_running"] and status["station"]["phase"] == "stopped"
