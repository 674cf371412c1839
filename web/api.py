"""The JSON API under /api/: what the pages show, with the same permissions."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, request

from station import queries
from station.radio.profile import MeshProfile
from web.security import require

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
    return jsonify(queries.wearers(current_app.station_db()))


@bp.route("/outbox")
@require("read")
def outbox():
    return jsonify(queries.outbox(current_app.station_db(), include_done=request.args.get("all") == "1"))


@bp.route("/status")
@require("read")
def status():
    return jsonify(queries.status(current_app.station_db(), MeshProfile.from_config(current_app.station_config)))
