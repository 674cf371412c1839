"""Server-Sent Events: the browser hears of every new event (a new SOS, an acknowledgement)
within half a second, without reloading."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app, stream_with_context

from station.storage import db as dbmod
from web.security import require

bp = Blueprint("stream", __name__, url_prefix="/api")
POLL_S = 0.25
MAX_S = 300.0     # the browser reconnects by itself; bounded streams free server threads


@bp.route("/stream")
@require("read")
def events():
    path = current_app.station_config.database_path

    def generate():
        db = dbmod.connect(path, create=False)
        try:
            last = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
            yield "retry: 1000\n\n"
            end = time.monotonic() + MAX_S
            while time.monotonic() < end:
                rows = db.execute("SELECT e.id, e.incident_id, e.action, i.state FROM events e "
                                  "LEFT JOIN incidents i ON i.id=e.incident_id WHERE e.id > ? ORDER BY e.id",
                                  (last,)).fetchall()
                for eid, iid, action, state in rows:
                    last = eid
                    data = json.dumps({"incident": iid, "action": action, "state": state})
                    yield f"id: {eid}\nevent: incident\ndata: {data}\n\n"
                if not rows:
                    yield ": keep-alive\n\n"
                time.sleep(POLL_S)
        finally:
            db.conn.close()
    return Response(stream_with_context(generate()), mimetype="text/event-stream",
                    headers={"X-Accel-Buffering": "no"})
