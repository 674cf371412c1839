"""Pages: the alert list and one incident, with the coordinators' actions."""

from __future__ import annotations


from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from station import incidents, queries
from station.cli.common import write
from station.relay import outbox
from web.i18n import gettext as _, message
from web.maps import incident_map
from web.security import require

bp = Blueprint("alerts", __name__)
PAGE = 50      # alerts a page: duress and verified wearers' first (queries.alerts)


@bp.route("/")
@require("read")
def index():
    db = current_app.station_db()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    rows = queries.alerts(db, include_resolved=request.args.get("all") == "1", limit=PAGE + 1,
                          offset=(page - 1) * PAGE)
    more, rows = len(rows) > PAGE, rows[:PAGE]
    unacked = sum(1 for r in rows if r["state"] == "open")
    return render_template("alerts.html", alerts=rows, unacked=unacked, status=queries.status(db), page=page,
                           more=more)


@bp.route("/alerts/<int:iid>")
@require("read")
def incident(iid: int):
    db = current_app.station_db()
    row = queries.alert(db, iid)
    if row is None:
        abort(404)
    posts = queries.outbox(db, include_done=True, incident=iid)
    return render_template("incident.html", a=row, posts=posts, resolutions=incidents.RESOLUTIONS,
                           **incident_map(db, row))


def _act(iid: int, fn, done: str):
    actor = f"console:{g.user.name}"
    try:
        write(current_app.station_db(), lambda d: fn(d, actor, current_app.station_now()))
    except (incidents.IncidentError, outbox.OutboxError) as e:
        flash(message(e), "error")
    else:
        flash(done, "ok")
    return redirect(url_for("alerts.incident", iid=iid))


@bp.route("/alerts/<int:iid>/ack", methods=["POST"])
@require("incidents")
def ack(iid: int):
    return _act(iid, lambda d, a, t: incidents.acknowledge(d, iid, a, t), _("acknowledged"))


@bp.route("/alerts/<int:iid>/resolve", methods=["POST"])
@require("incidents")
def resolve(iid: int):
    resolution = request.form.get("resolution", "")
    reason = request.form.get("reason", "")[:2000]
    return _act(iid, lambda d, a, t: incidents.resolve(d, iid, resolution, a, t, reason),
                _("resolved: {resolution}", resolution=_(resolution)))


@bp.route("/alerts/<int:iid>/note", methods=["POST"])
@require("incidents")
def note(iid: int):
    text = request.form.get("note", "")
    return _act(iid, lambda d, a, t: incidents.add_note(d, iid, text, a, t), _("note added"))


@bp.route("/alerts/<int:iid>/approve", methods=["POST"])
@require("publish")
def approve(iid: int):
    return _act(iid, lambda d, a, t: outbox.approve(d, iid, a, t), _("publication approved"))


@bp.route("/alerts/<int:iid>/withhold", methods=["POST"])
@require("publish")
def withhold(iid: int):
    return _act(iid, lambda d, a, t: outbox.withhold(d, iid, a, t), _("publication withheld"))
