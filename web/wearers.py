"""Wearers and bracelets: the registry, pinned keys, consent and verification policy."""

from __future__ import annotations


from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from station import queries, registry
from station.watch import settings as watch_settings
from station.watch.rules import Defaults
from web.transactions import write
from web.i18n import gettext as _, message
from web.security import require

bp = Blueprint("wearers", __name__, url_prefix="/wearers")


@bp.route("/")
@require("read")
def index():
    c = current_app.station_config.console
    db = current_app.station_db()
    worries = queries.worries(db, current_app.station_now(), current_app.station_config.watch["report_every_s"],
                              c["low_battery_percent"])
    return render_template("wearers.html", wearers=queries.wearers(db, real_names=g.user.can("wearers")),
                           silent={b["node_num"] for b in worries["silent"]},
                           low={b["node_num"] for b in worries["low_battery"]},
                           retired=registry.retired(db) if g.user.can("wearers") else [])


@bp.route("/<int:num>", methods=["GET", "POST"])
@require("read")
def edit(num: int):
    # The role first: a viewer must not learn which nodes are registered by probing.
    if request.method == "POST" and not g.user.can("wearers"):
        abort(403, description=_("your role may not change consent (wearers)"))
    db = current_app.station_db()
    found = queries.wearers(db, num, real_names=g.user.can("wearers"))
    if not found:
        abort(404)
    if request.method == "POST":
        f = request.form
        changes = {k: f.get(k) for k in ("publish", "name_mode", "precision", "pseudonym", "real_name")}
        changes.update(map_link="map_link" in f, position_updates="position_updates" in f,
                       languages=(f.get("languages") or "en").split(","),
                       approvals=f.get("approvals") or 1,
                       publish_after_min=f.get("publish_after_min") or None)
        try:
            write(db, lambda d: registry.set_consent(d, num, changes, f"console:{g.user.name}", current_app.station_now()))
        except (ValueError, TypeError) as e:
            flash(message(e), "error")
        else:
            flash(_("consent and policy saved"), "ok")
        return redirect(url_for("wearers.edit", num=num))
    d = Defaults.of(current_app.station_config)
    [watch] = [r for r in watch_settings.overview(db, d) if r["node_num"] == num] or [None]
    return render_template("wearer.html", w=found[0], choices=registry.CONSENT_CHOICES, watch=watch, watch_on=d.enabled)


@bp.route("/<int:num>/watch", methods=["POST"])
@require("wearers")
def watch(num: int):
    """Her watch: whether her silence is an alarm, after how long, and her check-ins."""
    f = request.form
    changes = {"watch": "watch" in f, "report_every_min": f.get("report_every_min"),
               "silent_alarm_min": f.get("silent_alarm_min"), "checkin_every_h": f.get("checkin_every_h") or 0,
               "checkin_from": f.get("checkin_from"), "checkin_to": f.get("checkin_to")}
    d = Defaults.of(current_app.station_config)
    try:
        write(current_app.station_db(), lambda db: watch_settings.update(
            db, num, changes, f"console:{g.user.name}", current_app.station_now(), d))
    except ValueError as e:
        flash(message(e), "error")
    else:
        flash(_("watch saved"), "ok")
    return redirect(url_for("wearers.edit", num=num))
