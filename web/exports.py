"""Exports for evidence: positions as CSV, GeoJSON or KML, and the event log as CSV, for one
incident or a date range. Spreadsheet formulas in mesh-supplied text are neutralised."""

from __future__ import annotations

import csv
import datetime
import io
import json
from xml.sax.saxutils import escape

from flask import Blueprint, Response, abort, current_app, request

from station import registry
from station.decode import precision

from web.i18n import gettext as _
from web.security import require

bp = Blueprint("exports", __name__, url_prefix="/exports")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    """A CSV cell a spreadsheet will not execute: text that starts like a formula gets a quote."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_START) and not _number(text):
        return "'" + text
    return text


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def iso(at: float | None) -> str | None:
    """ISO 8601 with the station's UTC offset: a court or a partner reads the same instant
    whatever their own time zone, and a spreadsheet sorts it."""
    if at is None:
        return None
    return datetime.datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


def _filename(kind: str, ext: str) -> str:
    """Named after what it holds: alert-12-positions.csv, not a sixth positions.csv in Downloads."""
    iid = request.args.get("incident", type=int)
    if iid is not None:
        return f"alert-{iid}-{kind}.{ext}"
    start, end = request.args.get("from", type=float), request.args.get("to", type=float)
    day = lambda t: datetime.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d")  # noqa: E731
    return f"{kind}-{day(start) if start else 'start'}-to-{day(end) if end else 'now'}.{ext}"


def _scope() -> tuple[str, tuple]:
    """WHERE clause for ?incident=ID, or ?from=&to= (Unix seconds)."""
    if request.args.get("incident"):
        iid = request.args.get("incident", type=int)
        row = current_app.station_db().execute("SELECT node_num, opened_at, COALESCE(resolved_at, 1e12) "
                                               "FROM incidents WHERE id=?", (iid,)).fetchone()
        if row is None:
            abort(404)
        return "p.node_num=? AND p.received_at BETWEEN ? AND ?", (row[0], row[1] - 3600, row[2])
    start = request.args.get("from", type=float, default=0.0)
    end = request.args.get("to", type=float, default=1e12)
    return "p.received_at BETWEEN ? AND ?", (start, end)


def _positions() -> list[tuple]:
    where, params = _scope()
    return current_app.station_db().execute(
        f"""SELECT p.received_at, printf('!%08x', p.node_num), {registry.label_at("p.node_num", "p.received_at")},
                   p.lat, p.lon, p.alt,
                   p.source, p.sats, p.precision_bits, p.cached FROM positions p LEFT JOIN nodes n ON n.num=p.node_num
            LEFT JOIN bracelets b ON b.node_num=p.node_num WHERE p.node_num IS NOT NULL AND {where}
            ORDER BY p.received_at LIMIT 100000""", params).fetchall()


def _csv(header: list[str], rows, name: str) -> Response:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    for r in rows:
        w.writerow([cell(v) for v in r])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


@bp.route("/positions.csv")
@require("incidents")
def positions_csv():
    rows = [(iso(r[0]), *r[1:8], _uncertainty(r[8]), r[9]) for r in _positions()]
    return _csv(["received_at", "node", "name", "lat", "lon", "alt", "source", "sats", "uncertainty_m", "replayed"],
                rows, _filename("positions", "csv"))


def _uncertainty(bits) -> int | None:
    """How far the wearer may be from the point: the firmware sends the centre of a cell at the
    channel's precision (None: a full-precision fix)."""
    m = precision.uncertainty_m(bits)
    return None if m is None else round(m)


@bp.route("/positions.geojson")
@require("incidents")
def positions_geojson():
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                 "properties": {"received_at": iso(at), "node": node, "name": name, "alt": alt, "source": src,
                                "uncertainty_m": _uncertainty(bits), "replayed": bool(cached)}}
                for at, node, name, lat, lon, alt, src, _, bits, cached in _positions()]
    return Response(json.dumps({"type": "FeatureCollection", "features": features}), mimetype="application/geo+json",
                    headers={"Content-Disposition": f"attachment; filename={_filename('positions', 'geojson')}"})


def _kml_note(src, at, bits) -> str:
    m = _uncertainty(bits)
    return f"{src} at {iso(at)}" + (f", within {m} m of this point" if m is not None else "")


@bp.route("/positions.kml")
@require("incidents")
def positions_kml():
    marks = "".join(
        f"<Placemark><name>{escape(str(name or node))}</name><description>{escape(_kml_note(src, at, bits))}"
        f"</description><TimeStamp><when>{iso(at)}</when></TimeStamp>"
        f"<Point><coordinates>{lon},{lat}</coordinates></Point></Placemark>"
        for at, node, name, lat, lon, alt, src, _, bits, cached in _positions())
    kml = ('<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
           f"{marks}</Document></kml>")
    return Response(kml, mimetype="application/vnd.google-earth.kml+xml",
                    headers={"Content-Disposition": f"attachment; filename={_filename('positions', 'kml')}"})


@bp.route("/events.csv")
@require("incidents")
def events_csv():
    iid = request.args.get("incident", type=int)
    if iid is None:
        abort(400, description=_("give ?incident=ID"))
    rows = [(iso(at), *rest) for at, *rest in current_app.station_db().execute(
        "SELECT at, actor, action, detail FROM events WHERE incident_id=? ORDER BY id", (iid,)).fetchall()]
    return _csv(["at", "actor", "action", "detail"], rows, f"alert-{iid}-events.csv")
