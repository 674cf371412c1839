"""The database: durable settings, migrations, one writer with group commit, append-only log."""

from __future__ import annotations

import sqlite3
import threading

import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from meshtastic.protobuf import mesh_pb2

from station.clock import StationClock
from station.decode.packets import Rules
from station.ingest import Ingest
from station.storage import db as dbmod
from station.storage import records
from station.storage.migrations import MIGRATIONS, migrate, schema_version
from station.storage.writer import Writer

from .conftest import wait_until


def test_database_is_wal_with_full_sync_and_a_busy_timeout(tmp_path):
    db = dbmod.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == dbmod.BUSY_TIMEOUT_MS


def test_migrations_apply_once_and_refuse_a_newer_schema(tmp_path):
    db = dbmod.connect(tmp_path / "s.db")
    assert migrate(db) == len(MIGRATIONS) == schema_version(db)
    assert migrate(db) == len(MIGRATIONS)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this station"):
        migrate(db)


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    f = tmp_path / "s.db"
    f.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(dbmod.StorageError, match="is not an SQLite database .*right path"):
        dbmod.connect(f)


def test_a_burst_of_changes_is_one_commit(tmp_path):
    w = Writer(tmp_path / "s.db")
    for i in range(300):
        w.submit(lambda db, i=i: records.insert_reject(db, float(i), "test", "burst"))
    w.start()
    w.call(lambda db: None)
    assert w.stats.commits <= 2 and w.stats.largest_batch >= 300
    assert w.db.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 300
    w.stop()


def test_a_failing_change_is_rolled_back_alone(tmp_path):
    w = Writer(tmp_path / "s.db")
    w.submit(lambda db: records.insert_reject(db, 1.0, "test", "before"))

    def broken(db):
        records.insert_reject(db, 2.0, "test", "half-done")
        raise ValueError("boom")
    w.submit(broken)
    w.submit(lambda db: records.insert_reject(db, 3.0, "test", "after"))
    w.start()
    w.call(lambda db: None)
    assert [r[0] for r in w.db.execute("SELECT reason FROM rejects ORDER BY at")] == ["before", "after"]
    assert w.stats.failed_jobs == 1
    w.stop()


def test_after_commit_actions_see_the_change_on_disk(tmp_path):
    path = tmp_path / "s.db"
    w = Writer(path).start()
    seen = []
    done = threading.Event()

    def check(_):
        with sqlite3.connect(path) as other:
            seen.append(other.execute("SELECT COUNT(*) FROM rejects").fetchone()[0])
        done.set()
    w.submit(lambda db: records.insert_reject(db, 1.0, "test", "x"), on_commit=check)
    assert done.wait(5)
    assert seen == [1]
    w.stop()


def test_call_returns_the_result_and_raises_the_error(tmp_path):
    w = Writer(tmp_path / "s.db").start()
    assert w.call(lambda db: db.execute("SELECT 41 + 1").fetchone()[0]) == 42
    with pytest.raises(ZeroDivisionError):
        w.call(lambda db: 1 / 0)
    w.stop()


def test_the_event_log_is_append_only(tmp_path):
    db = dbmod.connect(tmp_path / "s.db")
    migrate(db)
    db.execute("INSERT INTO events (incident_id, at, actor, action) VALUES (1, 1.0, 'x', 'opened')")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE events SET action='nothing happened'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM events")


def test_a_packet_seen_again_is_stored_once_and_counted(tmp_path):
    db = dbmod.connect(tmp_path / "s.db")
    migrate(db)
    p = mesh_pb2.MeshPacket(id=77, to=0xFFFFFFFF)
    setattr(p, "from", 5)
    p.decoded.portnum = 1
    assert records.insert_packet(db, p, 1.0)[1] is True
    p.hop_limit = 1   # the same packet, rebroadcast
    assert records.insert_packet(db, p, 2.0)[1] is False
    assert db.execute("SELECT COUNT(*), SUM(duplicates), MAX(last_seen_at) FROM packets").fetchone() == (1, 1, 2.0)


packets = st.builds(
    lambda sender, pid, port, payload: (sender, pid, port, payload),
    st.integers(1, 2**32 - 2), st.integers(0, 50), st.integers(0, 300), st.binary(max_size=200))


@given(st.lists(packets, max_size=25))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_packets_through_ingest_are_all_stored_and_none_twice(tmp_path_factory, items):
    path = tmp_path_factory.mktemp("ingest") / "s.db"
    w = Writer(path).start()
    try:
        # Stopped whatever happens: a failing example must not leave its writer thread and files
        # open for the next forty (one failure once became twenty, with 1,438 open files).
        check_ingest(w, items)
    finally:
        w.stop()


def check_ingest(w: Writer, items) -> None:
    ingest = Ingest(w, Rules(), StationClock(), fold_window_s=60)
    keys = set()
    zero_ids = 0
    for sender, pid, port, payload in items:
        p = mesh_pb2.MeshPacket(id=pid, to=0xFFFFFFFF)
        setattr(p, "from", sender)
        p.decoded.portnum = port
        p.decoded.payload = payload
        ingest.on_packet(p)
        if pid == 0:
            zero_ids += 1
        else:
            keys.add((sender, pid))
    w.call(lambda db: None)
    assert w.db.execute("SELECT COUNT(*) FROM packets").fetchone()[0] == len(keys) + zero_ids
    assert w.stats.failed_jobs == 0


def _locks_held_by_me(shm) -> int:
    st = os.stat(shm)
    me = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return sum(1 for line in open("/proc/locks") if f" {os.getpid()} {me} " in line and "->" not in line)


def test_asking_who_holds_the_lock_leaves_the_stations_own_locks_in_place(tmp_path):
    """The daemon names the process blocking its writes; asking must not drop the POSIX locks its
    own SQLite connections hold on the -shm (closing any descriptor of a file drops them all,
    and a second process could then rebuild the WAL index under the daemon's feet)."""
    path = tmp_path / "s.db"
    db = dbmod.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.execute("BEGIN")
    db.execute("SELECT COUNT(*) FROM t").fetchone()     # a read transaction: a read lock on the -shm
    held = _locks_held_by_me(f"{path}-shm")
    assert held >= 1
    assert dbmod.write_lock_holder(path) is None
    assert _locks_held_by_me(f"{path}-shm") == held
    db.execute("COMMIT")


def _locked_by_another_process(path):
    """A backup or a forgotten `sqlite3` shell holding the write lock: the writer's commits fail
    at once instead of after its busy timeout."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_stop_while_the_database_refuses_changes_ends_the_writer_and_nothing_is_committed_after(tmp_path):
    """An operator restarts a station whose database is locked. The old writer must be gone when
    its stop returns: one that lived on committed its held changes later, into the next run,
    and ran their after-commit actions on files its daemon had closed (CI: the restarted
    station's database then failed every read with 'disk I/O error')."""
    path = tmp_path / "s.db"
    w = Writer(path).start()
    w.db.execute("PRAGMA busy_timeout=0")
    other = _locked_by_another_process(path)
    after_commit = []
    w.submit(lambda db: records.insert_reject(db, 1.0, "test", "held"), on_commit=after_commit.append)
    wait_until(lambda: w.unavailable is not None, what="the writer to find the database locked")
    assert "locked" in w.unavailable[0]
    # More arrives behind the held batch (the radio does not stop talking).
    for i in range(5):
        w.submit(lambda db, i=i: records.insert_reject(db, 2.0 + i, "test", "queued"), on_commit=after_commit.append)
    waiting = {}

    def caller():
        try:
            w.call(lambda db: records.insert_reject(db, 9.0, "test", "awaited"), timeout=30)
        except Exception as e:
            waiting["error"] = e
    t = threading.Thread(target=caller)
    t.start()
    w.stop()
    assert not w.is_alive()
    assert w.lost_at_stop == 7
    t.join(5)
    assert "not stored" in str(waiting.get("error"))      # told, not left waiting for its timeout
    other.execute("ROLLBACK")                               # the lock goes away after the stop
    other.close()
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 0
    assert after_commit == []


def test_a_database_that_comes_back_while_the_writer_stops_gets_every_held_change(tmp_path):
    """The lock is released just as the station stops: the stop's own retry stores everything."""
    path = tmp_path / "s.db"
    w = Writer(path).start()
    w.db.execute("PRAGMA busy_timeout=0")
    other = _locked_by_another_process(path)
    for i in range(3):
        w.submit(lambda db, i=i: records.insert_reject(db, float(i), "test", "held"))
    wait_until(lambda: w.unavailable is not None, what="the writer to find the database locked")
    other.execute("ROLLBACK")
    other.close()
    w.stop()
    assert not w.is_alive() and w.lost_at_stop == 0
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 3


def test_a_closed_spool_never_touches_the_file_that_took_its_descriptor_number(tmp_path, monkeypatch):
    """After a daemon stops, a late after-commit action of its own may still ask its spool to
    empty itself. The number of the closed descriptor belongs by then to whatever the next run
    opened first: the new database's files. Truncating that would cost every stored alert."""
    monkeypatch.setenv("STATION_RUNTIME_DIR", str(tmp_path / "run"))
    from station.storage.spool import Spool
    spool = Spool(tmp_path / "s.db")
    packet = mesh_pb2.MeshPacket(id=1)
    setattr(packet, "from", 0x1234)
    end = spool.append(packet, 1.0, alert=True)
    fd = spool._fd
    spool.close()
    precious = tmp_path / "new-run.db"
    precious.write_bytes(b"SQLite format 3\x00" + b"x" * 4000)
    reused = os.open(precious, os.O_RDWR | os.O_APPEND)
    try:
        assert reused == fd              # the kernel hands out the lowest free number
        assert spool.empty_if(end) is False
        assert spool.append(packet, 2.0, alert=True) is None
        assert list(spool.records()) == []
    finally:
        os.close(reused)
    assert precious.stat().st_size == 4016
