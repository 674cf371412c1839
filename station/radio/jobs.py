"""Radio jobs: how a technician's command changes the radio while the daemon owns its port.

A serial port has one owner. When the daemon runs, `station radio configure` leaves a job in the
database, the daemon claims it, carries it out on its own link and writes the result; the command
waits for that result. A job left `running` by a daemon that stopped is failed at the next start,
and a job nobody claimed is withdrawn by the command that gave up waiting on it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

import sqlite_utils

from station.logs import event

log = logging.getLogger(__name__)


def submit(db: sqlite_utils.Database, kind: str, args: dict, by: str) -> int:
    with db.conn:
        cur = db.execute("INSERT INTO radio_jobs (kind, args, requested_by, requested_at, state) "
                         "VALUES (?, ?, ?, ?, 'queued')", [kind, json.dumps(args), by, time.time()])
    return cur.lastrowid


def wait(db: sqlite_utils.Database, job_id: int, timeout: float) -> dict:
    """The finished job's row; on timeout a job still queued is withdrawn (state `withdrawn`)."""
    deadline = time.monotonic() + timeout
    while True:
        row = db.execute("SELECT state, result FROM radio_jobs WHERE id=?", [job_id]).fetchone()
        if row and row[0] in ("done", "failed"):
            return {"state": row[0], **json.loads(row[1] or "{}")}
        if time.monotonic() >= deadline:
            with db.conn:
                db.execute("UPDATE radio_jobs SET state='withdrawn', finished_at=? WHERE id=? AND state='queued'",
                           [time.time(), job_id])
            state = db.execute("SELECT state FROM radio_jobs WHERE id=?", [job_id]).fetchone()[0]
            return {"state": state, "error": "the daemon did not finish the job in time"
                    + (" (it never picked it up: is it running?)" if state == "withdrawn" else
                       " (it is still working on it: see station radio info in a minute)")}
        time.sleep(0.2)


class JobRunner:
    """In the daemon: claims queued jobs and runs each on a thread of its own (a configure waits
    for the radio to reboot; the daemon's monitor loop must not)."""

    def __init__(self, reader: sqlite_utils.Database, writer, handlers: dict[str, Callable[[dict, str], dict]]):
        self.reader = reader
        self.writer = writer
        self.handlers = handlers
        self._busy = threading.Lock()

    def abandon_running(self) -> None:
        """At start: whatever a previous daemon left running did not finish."""
        self.writer.submit(lambda db: db.execute(
            "UPDATE radio_jobs SET state='failed', finished_at=?, result=? WHERE state='running'",
            [time.time(), json.dumps({"error": "the station stopped while the job was running; "
                                      "check the radio with station radio info"})]), name="radio-jobs")

    def poll(self) -> None:
        if self._busy.locked():
            return
        row = self.reader.execute("SELECT id, kind, args, requested_by FROM radio_jobs WHERE state='queued' "
                                  "ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return
        job_id, kind, args, by = row
        claimed = self.writer.call(lambda db: db.execute(
            "UPDATE radio_jobs SET state='running', started_at=? WHERE id=? AND state='queued'",
            [time.time(), job_id]).rowcount)
        if claimed != 1:
            return
        self._busy.acquire()
        threading.Thread(target=self._run, args=(job_id, kind, json.loads(args or "{}"), by or "unknown"),
                         name=f"radio-job-{job_id}", daemon=True).start()

    def _run(self, job_id: int, kind: str, args: dict, by: str) -> None:
        try:
            handler = self.handlers.get(kind)
            if handler is None:
                result, state = {"error": f"unknown job kind {kind!r}"}, "failed"
            else:
                try:
                    result = handler(args, by)
                    state = "done" if result.get("ok") else "failed"
                except Exception as e:   # a job's failure must not take the daemon with it
                    log.exception("radio job %s failed", job_id)
                    result, state = {"error": str(e) or type(e).__name__}, "failed"
            event(log, "radio.job", logging.INFO, f"radio job {job_id} ({kind}) by {by}: {state}",
                  job=job_id, kind=kind, state=state)
            self.writer.call(lambda db: db.execute(
                "UPDATE radio_jobs SET state=?, finished_at=?, result=? WHERE id=?",
                [state, time.time(), json.dumps(result), job_id]))
        finally:
            self._busy.release()
