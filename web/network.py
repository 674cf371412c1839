"""The network page: on a console beside the hub (its config names the hub's [hub] database), every
station's alerts as one, each with the stations that heard it and who posted it, every station's
health and how long since it spoke, and a map of the stations and the open alerts."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, url_for
from markupsafe import Markup

from station import maps
from station.hub import views
from web.i18n import gettext as _
from web.maps import _office_maps
from web.security import require

bp = Blueprint("network", __name__)
SILENT_AFTER_S = 180.0          # three missed health reports (one a minute)
_SHOWN = "IN (SELECT value FROM json_each(?))"     # the alerts on the page, given as a JSON list


def hub_path() -> Path:
    cfg = current_app.station_config
    return cfg.base_dir / cfg.hub["database"]


def available() -> bool:
    return hub_path().exists()


@bp.route("/network")
@require("read")
def index():
    if not available():
        abort(404, description=_("This console is not beside a hub ([hub] database names no file here)."))
    with sqlite3.connect(f"file:{hub_path()}?mode=ro", uri=True) as db:
        stations = [_station(r) for r in db.execute(
            "SELECT id, last_seen, events, health, health_at, lat, lon FROM stations ORDER BY id")]
        alerts = views.alerts(db)
        # Three queries for the whole page, not three an alert (up to 120 alerts shown).
        ids = json.dumps([a["id"] for a in alerts])
        detail = {r[0]: r[1:] for r in db.execute(
            f"SELECT id, lat, lon, duress, press_count FROM hub_incidents WHERE id {_SHOWN}", (ids,))}
        heard = _by_alert(db, "SELECT hub_incident, station, snr, hops, heard_at, state FROM receptions "
                              f"WHERE hub_incident {_SHOWN} ORDER BY heard_at", ids)
        posts = _by_alert(db, "SELECT hub_incident, station, destination, state, url, claim FROM posts "
                              f"WHERE hub_incident {_SHOWN} ORDER BY at", ids)
    for a in alerts:
        a["lat"], a["lon"], a["duress"], a["presses"] = detail[a["id"]]
        a["heard"], a["posts"] = heard.get(a["id"], []), posts.get(a["id"], [])
    return render_template("network.html", stations=stations, alerts=alerts, **_map(stations, alerts))


def _by_alert(db, sql: str, ids: str) -> dict[int, list[tuple]]:
    """Rows whose first column is a hub alert's id, grouped by it (the rest of each row kept)."""
    out: dict[int, list[tuple]] = {}
    for row in db.execute(sql, (ids,)):
        out.setdefault(row[0], []).append(row[1:])
    return out


def _station(row) -> dict:
    sid, last_seen, events, health, health_at, lat, lon = row
    h = json.loads(health) if health else {}
    return {"id": sid, "last_seen": last_seen, "events": events, "health": h, "health_at": health_at,
            "lat": lat, "lon": lon, "silent": last_seen is None or time.time() - last_seen > SILENT_AFTER_S}


def _map(stations: list[dict], alerts: list[dict]) -> dict:
    points = [{"lat": a["lat"], "lon": a["lon"], "kind": "duress" if a["duress"] else "alert",
               "label": _("Alert {iid}: {name}", iid=a["id"], name=a["node"]), "href": "#alert-" + str(a["id"]),
               "cell": None} for a in alerts if a["lat"] is not None and a["state"] != "resolved"]
    points += [{"lat": s["lat"], "lon": s["lon"], "kind": "station", "label": _("Station {id}", id=s["id"]),
                "href": "#station-" + s["id"], "cell": None} for s in stations if s["lat"] is not None]
    for p in points:
        p["colour"] = maps.COLOURS[p["kind"]]
    if not points:
        return {"points_json": "[]", "map_layers": None, "grid": None}
    origin = (points[0]["lat"], points[0]["lon"])
    grid = maps.grid_svg(origin, points[0]["label"], [(p["lat"], p["lon"], p["label"], p["kind"]) for p in points],
                         caption=_("stations and open alerts"), track=False)
    return {"points_json": json.dumps(points), "grid": Markup(grid), "grid_origin": points[0]["label"],
            **_office_maps([(p["lat"], p["lon"]) for p in points])}


def nav_link() -> str | None:
    return url_for("network.index") if available() else None
