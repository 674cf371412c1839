"""The single writer thread: every change to the database goes through it.

Work arrives as small functions on a queue. The thread takes the first change, gathers
whatever else arrives within `window_s` (up to `batch_max`), runs each function inside its own
SAVEPOINT of one transaction and commits once: a burst of frames costs one fsync, and a
function that fails rolls back only its own changes. Without the window, frames arriving one
by one from the radio each paid their own fsync (4,777 commits for 5,000 frames, measured).
A job's `on_commit` runs only after COMMIT has returned, so nothing downstream (the buzzer, the
receipt to the bracelet) ever acts on something that is not yet on disk.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sqlite_utils

from station.storage import db as dbmod
from station.storage.migrations import migrate

log = logging.getLogger(__name__)

# Once the database has been quiet this long, the writer empties the WAL. While the WAL holds
# frames, every read transaction (the alarm monitor's, twice a second; the console's) rewrites
# its read mark in the mmap'd -shm file, and the kernel writes that page to the SD card every
# 30 s: 12 MB a day of an idle station (bench/sd_card.py). An empty WAL is read without a write.
IDLE_CHECKPOINT_S = 10.0
CHECKPOINT_RETRY_S = 60.0     # a reader in another process kept it busy: no more than once a minute
# How long a stop keeps trying a database that refuses changes before it gives up on them.
STOP_GRACE_S = 5.0

JobFn = Callable[[sqlite_utils.Database], Any]


@dataclass
class _Job:
    fn: JobFn
    on_commit: Callable[[Any], None] | None = None
    name: str = ""
    done: threading.Event | None = None
    result: Any = None
    error: BaseException | None = None


@dataclass
class WriterStats:
    commits: int = 0
    jobs: int = 0
    failed_jobs: int = 0
    largest_batch: int = 0
    commit_errors: int = 0
    last_error: str = ""
    extra: dict = field(default_factory=dict)


_STOP = object()


class Writer:
    def __init__(self, path: Path | str, batch_max: int = 512, window_s: float = 0.005, *, schema=migrate):
        """`schema`: the migrations to bring the file to (the hub's database has its own)."""
        self.path = Path(path)
        self.batch_max = batch_max
        self.window_s = window_s
        self.db = dbmod.connect(self.path)
        # What this connection deletes or overwrites (a purge, an edited name) is zeroed in the
        # file, not left in free space for whoever seizes the card (station/retention.py).
        self.db.execute("PRAGMA secure_delete=ON")
        try:
            schema(self.db)
            self.db_check = dbmod.quick_check(self.db)
        except sqlite3.OperationalError as e:
            self.db.conn.close()
            raise dbmod.StorageError(dbmod.explain(self.path, e)) from None
        except sqlite3.DatabaseError as e:
            self.db.conn.close()
            raise dbmod.unusable(self.path, e) from None
        except RuntimeError as e:        # a schema newer than this software
            self.db.conn.close()
            raise dbmod.StorageError(f"database {self.path}: {e}") from None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="station-writer", daemon=True)
        self.stats = WriterStats()
        self.alive_at = time.monotonic()
        self._stop_asked: float | None = None      # when stop() was called (monotonic)
        self._wake = threading.Event()
        self._last_commit = time.monotonic()
        self._last_checkpoint_try = float("-inf")
        self.idle_checkpoint_s = IDLE_CHECKPOINT_S
        # (why in words, since when on the monotonic clock) while commits fail; None when they work.
        self.unavailable: tuple[str, float] | None = None
        self.lost_at_stop = 0          # changes still uncommitted when a stop gave up on them

    # -- public API -------------------------------------------------------------------------
    def start(self) -> "Writer":
        self._thread.start()
        return self

    def submit(self, fn: JobFn, on_commit: Callable[[Any], None] | None = None, name: str = "") -> None:
        """Queue a change; returns at once. Safe from any thread, including the radio's."""
        self._queue.put(_Job(fn, on_commit, name))

    def call(self, fn: JobFn, timeout: float = 10.0) -> Any:
        """Run a change and wait until it is committed; re-raises its exception."""
        job = _Job(fn, None, getattr(fn, "__name__", ""), threading.Event())
        self._queue.put(job)
        if not job.done.wait(timeout):
            raise TimeoutError("the database writer did not commit in time")
        if job.error is not None:
            raise job.error
        return job.result

    def pending(self) -> int:
        return self._queue.qsize()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = STOP_GRACE_S + 2 * dbmod.BUSY_TIMEOUT_MS / 1000) -> None:
        """Commit everything queued so far, then stop. While the database refuses changes, it
        tries for STOP_GRACE_S more, then gives up on every held change (`lost_at_stop`; the
        spool keeps what the radio gave). When this returns the thread has ended: a writer that
        outlived its daemon once committed into the next daemon's run, and its after-commit
        actions worked on files the old daemon had closed (a descriptor number reused by the new
        run's files)."""
        self._stop_asked = time.monotonic()
        if self._thread.ident is None:      # never started: nothing queued can be committed
            self.db.conn.close()
            return
        self._queue.put(_STOP)
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():         # a job that hangs: never seen; say so, keep its connection
            log.error("the database writer did not stop within %.0f s", timeout)
            return
        self.db.conn.close()

    # -- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                self.alive_at = time.monotonic()
                self._checkpoint_if_idle()
                continue
            batch = [first]
            if self.window_s and first is not _STOP and first.done is None:
                # (A caller waiting in call() gets its commit at once.)
                # Sleep through the window rather than wait on the queue: a wait would wake this
                # thread once per arriving frame, which cost more CPU than the commits saved.
                time.sleep(self.window_s)
            while len(batch) < self.batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(j is _STOP for j in batch)
            jobs = [j for j in batch if j is not _STOP]
            if jobs and not self._commit_with_retry(jobs):
                return
            self.alive_at = time.monotonic()
            if stop:
                return

    def _checkpoint_if_idle(self) -> None:
        now = time.monotonic()
        if now - self._last_commit < self.idle_checkpoint_s or now - self._last_checkpoint_try < CHECKPOINT_RETRY_S:
            return
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            if not wal.exists() or wal.stat().st_size == 0:    # also written by the console and relay
                return
            self._last_checkpoint_try = now
            # No busy wait: an alert queued meanwhile must not wait behind a reader elsewhere.
            self.db.execute("PRAGMA busy_timeout=0")
            try:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self.db.execute(f"PRAGMA busy_timeout={dbmod.BUSY_TIMEOUT_MS}")
        except Exception as e:   # never worth more than a line: the next commit works without it
            log.warning("idle checkpoint failed: %s", e)

    def _commit_with_retry(self, jobs: list[_Job]) -> bool:
        """False when a stop gave up on them (and on everything queued behind them)."""
        delay = 0.2
        while True:
            try:
                self._commit(jobs)
                if self.unavailable is not None:
                    log.warning("the database takes changes again after %.0f s (%s)",
                                time.monotonic() - self.unavailable[1], self.unavailable[0])
                    self.unavailable = None
                return True
            except Exception as e:  # disk full, I/O error, locked: keep the batch, try again
                self.stats.commit_errors += 1
                self.stats.last_error = dbmod.describe(e)
                if self.unavailable is None:
                    self.unavailable = (dbmod.why_unavailable(self.path, e), time.monotonic())
                    log.error("database commit failed, keeping %d changes in memory and retrying: %s",
                              len(jobs), self.unavailable[0])
                try:
                    self.db.execute("ROLLBACK")
                except Exception:
                    pass
                wait = delay
                if self._stop_asked is not None:
                    left = self._stop_asked + STOP_GRACE_S - time.monotonic()
                    if left <= 0:
                        self._give_up(jobs, e)
                        return False
                    wait = min(wait, left)
                if self._wake.wait(wait):   # a stop wakes it: one more try at once
                    self._wake.clear()
                delay = min(delay * 2, 10.0)
                self.alive_at = time.monotonic()

    def _give_up(self, jobs: list[_Job], e: BaseException) -> None:
        while True:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is not _STOP:
                jobs.append(more)
        self.lost_at_stop = len(jobs)
        log.error("giving up on %d changes at shutdown", self.lost_at_stop)
        for job in jobs:
            if job.done is not None:
                job.error = dbmod.StorageError(f"not stored: the database refused changes until shutdown ({e})")
                job.done.set()

    def _commit(self, jobs: list[_Job]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        for job in jobs:
            job.error = None
            db.execute("SAVEPOINT job")
            try:
                job.result = job.fn(db)
                db.execute("RELEASE job")
            except Exception as e:
                db.execute("ROLLBACK TO job")
                db.execute("RELEASE job")
                job.error = e
                self.stats.failed_jobs += 1
                log.exception("storage job %s failed and was rolled back", job.name or job.fn)
        db.execute("COMMIT")
        self._last_commit = time.monotonic()
        self._last_checkpoint_try = float("-inf")     # new frames: the next quiet spell empties them
        self.stats.commits += 1
        self.stats.jobs += len(jobs)
        self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        for job in jobs:
            if job.error is None and job.on_commit is not None:
                try:
                    job.on_commit(job.result)
                except Exception:
                    log.exception("after-commit action of %s failed", job.name or job.fn)
            if job.done is not None:
                job.done.set()
