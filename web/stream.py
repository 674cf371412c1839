"""Server-Sent Events: the browser hears of every new event (a new SOS, an acknowledgement)
within half a second, without reloading.

One poller per console reads the event log and wakes every open stream; a stream only waits,
so fifty open pages cost one query every quarter second, not fifty. A stream still holds one of
waitress's threads, so streams are capped below the thread count: past the cap a page is told
to come back later (503, `retry`) and keeps up through its /api/state poll, and the console
itself never runs out of threads for the pages and actions.
"""

from __future__ import annotations

import collections
import json
import threading
import time

from flask import Blueprint, Response, current_app, request, stream_with_context

from station.storage import db as dbmod
from web.security import require

bp = Blueprint("stream", __name__, url_prefix="/api")
POLL_S = 0.25
MAX_S = 120.0        # the browser reconnects by itself; bounded streams free server threads
KEEPALIVE_S = 15.0
KEPT = 1000          # recent events kept for a page that reconnects with Last-Event-ID


class Full(Exception):
    pass


class EventHub:
    def __init__(self, database, max_streams: int, poll_s: float = POLL_S):
        self.database = database
        self.max_streams = max_streams
        self.poll_s = poll_s
        self._cond = threading.Condition()
        self._recent: collections.deque = collections.deque(maxlen=KEPT)
        self._newest: int | None = None
        self._streams = 0
        self._thread: threading.Thread | None = None

    @property
    def streams(self) -> int:
        return self._streams

    def acquire(self):
        """A stream's place, and the function that gives it back (safe to call more than once)."""
        with self._cond:
            if self._streams >= self.max_streams:
                raise Full
            self._streams += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll, name="console-events", daemon=True)
                self._thread.start()
            self._cond.wait_for(lambda: self._newest is not None, 5.0)
        done = threading.Event()

        def release():
            if not done.is_set():
                done.set()
                with self._cond:
                    self._streams -= 1
        return release

    def _poll(self) -> None:
        db = dbmod.connect(self.database, create=False)
        newest = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        with self._cond:
            self._newest = newest
            self._cond.notify_all()
        while True:
            with self._cond:
                while self._streams == 0:          # nobody listening: no queries
                    self._cond.wait()
            try:
                rows = db.execute("SELECT e.id, e.incident_id, e.action, i.state FROM events e "
                                  "LEFT JOIN incidents i ON i.id=e.incident_id WHERE e.id > ? ORDER BY e.id LIMIT 500",
                                  (newest,)).fetchall()
            except Exception:      # a locked or busy database: the next poll tries again
                rows = []
            if rows:
                newest = rows[-1][0]
                with self._cond:
                    self._recent.extend(rows)
                    self._newest = newest
                    self._cond.notify_all()
            time.sleep(self.poll_s)

    def start_id(self, last_event_id: str | None) -> int:
        """Where a stream starts: after what the page last saw (a reconnect), else from now."""
        with self._cond:
            if last_event_id and last_event_id.isdigit():
                return min(int(last_event_id), self._newest or 0)
            return self._newest or 0

    def after(self, last: int, timeout: float) -> list[tuple]:
        with self._cond:
            self._cond.wait_for(lambda: (self._newest or 0) > last, timeout)
            return [r for r in self._recent if r[0] > last]


def hub() -> EventHub:
    return current_app.extensions["event_hub"]


@bp.route("/stream")
@require("read")
def events():
    h = hub()
    try:
        release = h.acquire()
    except Full:
        return Response("retry: 10000\n\n", status=503, mimetype="text/event-stream",
                        headers={"Retry-After": "10"})
    last = h.start_id(request.headers.get("Last-Event-ID"))

    def generate():
        nonlocal last
        try:
            yield "retry: 1000\n\n"
            end = time.monotonic() + MAX_S
            while time.monotonic() < end:
                rows = h.after(last, min(KEEPALIVE_S, max(0.0, end - time.monotonic())))
                for eid, iid, action, state in rows:
                    last = eid
                    data = json.dumps({"incident": iid, "action": action, "state": state})
                    yield f"id: {eid}\nevent: incident\ndata: {data}\n\n"
                if not rows:
                    yield ": keep-alive\n\n"
        finally:
            release()
    response = Response(stream_with_context(generate()), mimetype="text/event-stream",
                        headers={"X-Accel-Buffering": "no"})
    # Also when the page left before the first byte: a generator never started runs no finally.
    response.call_on_close(release)
    return response
