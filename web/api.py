"""The JSON API under /api/: what the pages show, with the same permissions."""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, abort, current_app, g, jsonify, request

from station import queries
from station.radio.profile import MeshProfile
from web import banner
from web.security import require
from web.technician import overview

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.route("/alerts")
@require("read")
def alerts():
    return jsonify(queries.alerts(current_app.station_db(), include_resolved=request.args.get("all") == "1"))


@bp.route("/alerts/<int:iid>")
@require("read")
def alert(iid: int):
    row = queries.alert(current_app.station_db(), iid)
    if row is None:
        abort(404)
    return jsonify(row)


@bp.route("/nodes")
@require("read")
def nodes():
    return jsonify(queries.nodes(current_app.station_db()))


@bp.route("/bracelets")
@require("read")
def bracelets():
    return jsonify(queries.wearers(current_app.station_db(), real_names=g.user.can("wearers")))


@bp.route("/outbox")
@require("read")
def outbox():
    return jsonify(queries.outbox(current_app.station_db(), include_done=request.args.get("all") == "1"))


@bp.route("/radio")
@require("station")
def radio():
    o = overview(current_app.station_db(), current_app.station_config)
    tests = o["tests"]
    return jsonify({
        "radio": o["info"].to_state() if o["info"] else None, "daemon_running": o["daemon"],
        "profile_error": o["profile_error"] or None,
        "differences": [asdict(d) for d in o["differences"]],
        "bracelets": [{"node_id": f"!{b.node_num:08x}", "label": b.label, "hw_model": b.hw_model,
                       "firmware": b.firmware, "firmware_seen_at": b.firmware_seen_at,
                       "press_test": "waiting" if b.node_num in o["waiting"] else
                       (None if b.node_num not in tests else {**asdict(tests[b.node_num]), "path": tests[b.node_num].path()})}
                      for b in o["bracelets"]],
        "fleet": o["fleet"], "min_firmware": o["min_firmware"], "jobs": o["jobs"],
    })


@bp.route("/status")
@require("read")
def status():
    return jsonify(queries.status(current_app.station_db(), MeshProfile.from_config(current_app.station_config)))


@bp.route("/state")
@require("read")
def state():
    """What every page polls: the alerts the alarm rings for and the station-state banner."""
    return jsonify(page_state())


def page_state() -> dict:
    db = current_app.station_db()
    rows = db.execute("SELECT id, duress FROM incidents WHERE state='open' ORDER BY id").fetchall()
    last = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    return {"open": [r[0] for r in rows], "duress": [r[0] for r in rows if r[1]], "last_event": last,
            "banner": banner.as_json(banner.problems(current_app.station_config.database_path, db,
                                                     current_app.station_config, current_app.station_now()))}
