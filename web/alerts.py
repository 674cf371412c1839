"""Pages: the alert list and one incident, with the coordinators' actions."""

from __future__ import annotations

import time

import json

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup

from station import incidents, maps, queries
from station.cli.common import write
from station.relay import outbox
from web.security import require

bp = Blueprint("alerts", __name__)


@bp.route("/")
@require("read")
def index():
    db = current_app.station_db()
    rows = queries.alerts(db, include_resolved=request.args.get("all") == "1")
    unacked = sum(1 for r in rows if r["state"] == "open")
    return render_template("alerts.html", alerts=rows, unacked=unacked, status=queries.status(db))


@bp.route("/alerts/<int:iid>")
@require("read")
def incident(iid: int):
    db = current_app.station_db()
    row = queries.alert(db, iid)
    if row is None:
        abort(404)
    posts = queries.outbox(db, include_done=True, incident=iid)
    return render_template("incident.html", a=row, posts=posts, **_map(db, row))


def _map(db, row: dict) -> dict:
    """A local tile map if the office imported one, else a grid around the station (or the
    first fix), never a blank box."""
    track = [(p["lat"], p["lon"]) for p in row["positions"] if p["lat"] is not None]
    if row["lat"] is not None and (not track or track[-1] != (row["lat"], row["lon"])):
        track.append((row["lat"], row["lon"]))
    if not track:
        return {"map_tiles": None, "grid": None, "track_json": "[]"}
    tiles = maps.available(current_app.station_config.database_path)
    station = db.execute("SELECT lat, lon FROM positions WHERE node_num IS NULL ORDER BY id DESC LIMIT 1").fetchone()
    origin, label = ((station[0], station[1]), "station") if station else (track[0], "first fix")
    grid = maps.grid_svg(origin, label, [(lat, lon, row["name"] or row["node_id"]) for lat, lon in track])
    return {"map_tiles": url_for("maps.tile", name=tiles[0], z=0, x=0, y=0).replace("/0/0/0", "/{z}/{x}/{y}")
            if tiles else None, "grid": Markup(grid), "track_json": json.dumps(track)}


def _act(iid: int, fn, done: str):
    actor = f"console:{g.user.name}"
    try:
        write(current_app.station_db(), lambda d: fn(d, actor, time.time()))
    except (incidents.IncidentError, outbox.OutboxError) as e:
        flash(str(e), "error")
    else:
        flash(done, "ok")
    return redirect(url_for("alerts.incident", iid=iid))


@bp.route("/alerts/<int:iid>/ack", methods=["POST"])
@require("incidents")
def ack(iid: int):
    return _act(iid, lambda d, a, t: incidents.acknowledge(d, iid, a, t), "acknowledged")


@bp.route("/alerts/<int:iid>/resolve", methods=["POST"])
@require("incidents")
def resolve(iid: int):
    resolution = request.form.get("resolution", "")
    return _act(iid, lambda d, a, t: incidents.resolve(d, iid, resolution, a, t), f"resolved: {resolution}")


@bp.route("/alerts/<int:iid>/note", methods=["POST"])
@require("incidents")
def note(iid: int):
    text = request.form.get("note", "")
    return _act(iid, lambda d, a, t: incidents.add_note(d, iid, text, a, t), "note added")


@bp.route("/alerts/<int:iid>/approve", methods=["POST"])
@require("publish")
def approve(iid: int):
    return _act(iid, lambda d, a, t: outbox.approve(d, iid, a, t), "publication approved")


@bp.route("/alerts/<int:iid>/withhold", methods=["POST"])
@require("publish")
def withhold(iid: int):
    return _act(iid, lambda d, a, t: outbox.withhold(d, iid, a, t), "publication withheld")
