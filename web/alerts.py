"""Pages: the alert list and one incident, with the coordinators' actions."""

from __future__ import annotations

import datetime

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from station import incidents, nodeids, queries, trust
from station.relay import outbox
from web.i18n import N_, gettext as _, ngettext, term
from web.maps import incident_map
from web.security import require
from web.transactions import act

bp = Blueprint("alerts", __name__)
PAGE = 50      # alerts a page: duress and verified wearers' first (queries.alerts)


STATES = ("open", "acknowledged", "resolved")


def _day(text: str | None, end: bool = False) -> float | None:
    """A date from the filter form (YYYY-MM-DD) as the start of that day in the station's time zone."""
    if not text:
        return None
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        return None
    start = datetime.datetime.combine(day + datetime.timedelta(days=int(end)), datetime.time())
    return start.astimezone().timestamp()


def _filters(args) -> dict:
    wearer = (args.get("wearer") or "").strip()
    try:
        node = nodeids.parse_node(wearer) if wearer else None
    except ValueError:
        node = None
    return {"state": args.get("state") if args.get("state") in STATES else None,
            "include_resolved": args.get("all") == "1" or args.get("state") == "all",
            "trust": args.get("trust") if args.get("trust") in trust.LEVELS else None,
            "node_num": node, "since": _day(args.get("since")), "until": _day(args.get("until"), end=True)}


@bp.route("/")
@require("read")
def index():
    db = current_app.station_db()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    rows = queries.alerts(db, limit=PAGE + 1, offset=(page - 1) * PAGE, **_filters(request.args))
    more, rows = len(rows) > PAGE, rows[:PAGE]
    unacked = sum(1 for r in rows if r["state"] == "open")
    wearers = db.execute("SELECT printf('!%08x', node_num), label FROM bracelets ORDER BY label").fetchall()
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template("alerts.html", alerts=rows, unacked=unacked, page=page, more=more, args=args,
                           states=STATES, trusts=trust.LEVELS, wearers=wearers)


@bp.route("/alerts/<int:iid>")
@require("read")
def incident(iid: int):
    db = current_app.station_db()
    row = queries.alert(db, iid)
    if row is None:
        abort(404)
    posts = queries.outbox(db, include_done=True, incident=iid)
    held = [p for p in posts if p["state"] == "held"]
    pending = [p for p in posts if p["kind"] == "alert" and p["state"] in ("held", "ready")]
    return render_template("incident.html", a=row, posts=posts, resolutions=incidents.RESOLUTIONS,
                           held=held, pending=pending, **incident_map(db, row))


def _act(iid: int, fn, done: str):
    return act(fn, done, url_for("alerts.incident", iid=iid))


@bp.route("/alerts/<int:iid>/ack", methods=["POST"])
@require("incidents")
def ack(iid: int):
    return _act(iid, lambda d, a, t: incidents.acknowledge(d, iid, a, t), _("acknowledged"))


@bp.route("/alerts/<int:iid>/resolve", methods=["POST"])
@require("incidents")
def resolve(iid: int):
    resolution = request.form.get("resolution", "")
    reason = request.form.get("reason", "")[:2000]
    duress = current_app.station_db().execute("SELECT duress FROM incidents WHERE id=?", (iid,)).fetchone()
    if duress and duress[0] and request.form.get("confirm") != "duress":
        # A duress closed by a stray click tells whoever holds the wearer that the office stood down.
        flash(_("A DURESS alert closes only with the confirmation box ticked and a reason."), "error")
        return redirect(url_for("alerts.incident", iid=iid))
    return _act(iid, lambda d, a, t: incidents.resolve(d, iid, resolution, a, t, reason),
                _("resolved: {resolution}", resolution=term(resolution)))


@bp.route("/alerts/<int:iid>/note", methods=["POST"])
@require("incidents")
def note(iid: int):
    text = request.form.get("note", "")
    return _act(iid, lambda d, a, t: incidents.add_note(d, iid, text, a, t), _("note added"))


@bp.route("/alerts/<int:iid>/approve", methods=["POST"])
@require("publish")
def approve(iid: int):
    held = current_app.station_db().execute("SELECT COUNT(*) FROM outbox WHERE incident_id=? AND state='held'",
                                            (iid,)).fetchone()[0]
    done = (ngettext("publication approved: {n} post leaves as shown",
                     "publication approved: {n} posts leave as shown", held) if held else
            _("approval recorded; nothing is waiting to be published for this alert"))
    return _act(iid, lambda d, a, t: outbox.approve(d, iid, a, t), done)


@bp.route("/alerts/<int:iid>/withhold", methods=["POST"])
@require("publish")
def withhold(iid: int):
    return _act(iid, lambda d, a, t: outbox.withhold(d, iid, a, t), _("publication withheld"))


POST_ACTIONS = {
    # What a coordinator found on the platform about a post that may have gone out, or decides
    # about one that failed.
    "posted": N_("marked as posted"),
    "resend": N_("marked as not posted: sent again"),
    "not-posted": N_("marked as not posted"),
    "retry": N_("sent again"),
    "cancel": N_("cancelled"),
}


@bp.route("/alerts/<int:iid>/posts/<int:row>/<action>", methods=["POST"])
@require("publish")
def settle(iid: int, row: int, action: str):
    if action not in POST_ACTIONS:
        abort(404)
    url = request.form.get("url", "").strip()[:500] or None
    if url and not url.startswith(("https://", "http://")):
        flash(_("A post's address starts with https://"), "error")
        return redirect(url_for("alerts.incident", iid=iid))
    found = current_app.station_db().execute("SELECT 1 FROM outbox WHERE id=? AND incident_id=?", (row, iid)).fetchone()
    if found is None:
        abort(404)

    def do(d, actor, at):
        if action == "posted":
            outbox.confirm(d, row, actor, at, url=url, posted=True)
        elif action in ("resend", "not-posted"):
            outbox.confirm(d, row, actor, at, posted=False)
            if action == "resend":
                outbox.retry(d, row, actor, at)
        elif action == "retry":
            outbox.retry(d, row, actor, at)
        else:
            outbox.cancel(d, row, actor, at)
    return _act(iid, do, _(POST_ACTIONS[action]))
