"""Map tiles from the office's MBTiles and PMTiles files, and Leaflet from Debian's libjs-leaflet package."""

from __future__ import annotations

import json
import os

from flask import Blueprint, Response, abort, current_app, render_template, send_from_directory, url_for
from markupsafe import Markup

from station import maps, queries
from station.decode import precision
from web.i18n import gettext as _
from web.security import require

bp = Blueprint("maps", __name__)
LEAFLET_DIR = "/usr/share/javascript/leaflet"


@bp.route("/maps/tiles/<name>/<int:z>/<int:x>/<int:y>")
@require("read")
def tile(name: str, z: int, x: int, y: int):
    if not (0 <= z <= 22 and 0 <= x < (1 << z) and 0 <= y < (1 << z)):
        abort(404)
    found = maps.tile(current_app.station_config.database_path, name, z, x, y)
    if found is None:
        abort(404)
    data, mimetype = found
    return Response(data, mimetype=mimetype, headers={"Cache-Control": "private, max-age=86400"})


@bp.route("/vendor/leaflet/<path:filename>")
@require("read")
def leaflet(filename: str):
    if not os.path.isdir(LEAFLET_DIR):
        abort(404, description=_("Leaflet is missing: sudo apt-get install libjs-leaflet"))
    return send_from_directory(LEAFLET_DIR, filename)   # refuses paths outside the folder


@bp.route("/map")
@require("read")
def overview():
    """Every live alert and every registered bracelet's last position on one map, kept up to date
    by the page's live updates: where to send someone, at a glance, with no internet."""
    return render_template("map.html", **overview_map(current_app.station_db()))


def overview_map(db) -> dict:
    alerts = [a for a in queries.alerts(db) if a["lat"] is not None]
    bracelets = queries.bracelet_fixes(db)
    points = [{"lat": a["lat"], "lon": a["lon"], "kind": "duress" if a["duress"] else "alert",
               "label": _("Alert {iid}: {name}", iid=a["id"], name=a["name"] or a["node_id"]),
               "href": url_for("alerts.incident", iid=a["id"]), "cell": cell_of(a)} for a in alerts]
    points += [{"lat": b["lat"], "lon": b["lon"], "kind": "bracelet", "label": b["label"],
                "href": url_for("wearers.edit", num=b["node_num"]), "cell": None} for b in bracelets]
    for p in points:
        p["colour"] = maps.COLOURS[p["kind"]]
    out = {"alerts": alerts, "bracelets": bracelets, "points_json": json.dumps(points), "map_layers": None,
           "grid": None, "grid_origin": None, "uncovered": False}
    if not points:
        return out
    station = _station_fix(db)
    origin, label = (station, _("station")) if station else ((points[0]["lat"], points[0]["lon"]),
                                                               _("first alert or bracelet"))
    grid = maps.grid_svg(origin, label, [(p["lat"], p["lon"], p["label"], p["kind"]) for p in points],
                         caption=_("alerts and bracelets relative to {origin}", origin=label), track=False)
    return {**out, **_office_maps([(p["lat"], p["lon"]) for p in points]), "grid": Markup(grid), "grid_origin": label}


def _station_fix(db) -> tuple[float, float] | None:
    row = db.execute("SELECT lat, lon FROM positions WHERE node_num IS NULL ORDER BY id DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else None


def _office_maps(points: list[tuple[float, float]]) -> dict:
    """The imported maps that cover any of `points`, for Leaflet, and whether maps exist that
    cover none (the page then says why it shows the grid)."""
    described = maps.describe(current_app.station_config.database_path)
    layers = [_layer(name, info) for name, info in described if any(_covers(info, p) for p in points)]
    return {"map_layers": json.dumps(layers) if layers else None, "uncovered": bool(described) and not layers}


def incident_map(db, row: dict) -> dict:
    """The office's tile maps when one covers the last fix, else a grid around the station (or
    the first fix) with distances and bearings: never a blank box, never a grey one."""
    # A replay from the radio's cache is history the radio already told us, not where she is.
    track = [(p["lat"], p["lon"]) for p in row["positions"] if p["lat"] is not None and not p.get("cached")]
    if row["lat"] is not None and (not track or track[-1] != (row["lat"], row["lon"])):
        track.append((row["lat"], row["lon"]))
    if not track:
        return {"map_layers": None, "grid": None, "track_json": "[]", "uncovered": False, "cell_json": "null",
                "grid_origin": None}
    station = _station_fix(db)
    origin, label = (station, _("station")) if station else (track[0], _("first fix"))
    grid = maps.grid_svg(origin, label, [(lat, lon, row["name"] or row["node_id"]) for lat, lon in track],
                         caption=_("positions relative to {origin}", origin=label))
    # The notes under the grid name its real centre: without a station fix it is her first fix,
    # and "from the station" would send someone the wrong distance.
    return {**_office_maps([track[-1]]), "grid": Markup(grid), "grid_origin": label,
            "track_json": json.dumps(track), "cell_json": json.dumps(cell_of(row))}


def cell_of(row: dict) -> list | None:
    """The cell a reduced-precision fix stands for, [[south, west], [north, east]], drawn instead
    of a point: the wearer is anywhere in it."""
    box = precision.cell(row["lat"], row["lon"], row.get("fix_precision_bits")) if row["lat"] is not None else None
    return None if box is None else [[box[0], box[1]], [box[2], box[3]]]


def _covers(info: maps.MapInfo, point: tuple[float, float]) -> bool:
    if info.bounds is None:
        return True
    west, south, east, north = info.bounds
    return south <= point[0] <= north and west <= point[1] <= east


def _layer(name: str, info: maps.MapInfo) -> dict:
    url = url_for("maps.tile", name=name, z=0, x=0, y=0).replace("/0/0/0", "/{z}/{x}/{y}")
    # Leaflet stretches the deepest tiles past maxNativeZoom instead of asking for tiles the
    # file does not have, and asks nothing outside the bounds.
    layer = {"url": url, "minNativeZoom": info.minzoom, "maxNativeZoom": info.maxzoom}
    if info.bounds:
        west, south, east, north = info.bounds
        layer["bounds"] = [[south, west], [north, east]]
    return layer
