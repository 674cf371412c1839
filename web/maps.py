"""Map tiles from the office's MBTiles files, and Leaflet from Debian's libjs-leaflet package."""

from __future__ import annotations

import os

from flask import Blueprint, Response, abort, current_app, send_from_directory

from station import maps
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
        abort(404, description="Leaflet is not installed: sudo apt-get install libjs-leaflet")
    return send_from_directory(LEAFLET_DIR, filename)   # refuses paths outside the folder
