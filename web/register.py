"""Bracelets registered, renamed, given PINs and retired from the console, by the roles that
handle wearers (coordinators, admins). The key is typed from the device itself (its app, or
`meshtastic --info` on its USB port), never taken from what the mesh announced: anyone on the
mesh can announce a key under a bracelet's number. PINs only ever in password fields, hashed
before the transaction (scrypt must not hold the lock the daemon stores alerts under)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from station import nodeids, registry
from station.pins import PinError, PinPolicy
from web.i18n import gettext as _, message
from web.security import require
from web.transactions import act, write

bp = Blueprint("register", __name__, url_prefix="/wearers")


def _actor() -> str:
    return f"console:{g.user.name}"


class Mismatch(ValueError):
    pass


def _pins():
    f = request.form
    if (f.get("cancel_pin") or "") != (f.get("cancel_pin_again") or "") or \
            (f.get("duress_pin") or "") != (f.get("duress_pin_again") or ""):
        raise Mismatch(_("each PIN must be typed twice the same"))
    return PinPolicy.of(current_app.station_config).hash_pair(f.get("cancel_pin") or None, f.get("duress_pin") or None)


@bp.route("/register", methods=["GET", "POST"])
@require("wearers")
def new():
    db = current_app.station_db()
    f = request.values
    try:
        num = nodeids.parse_node(f.get("node", "")) if f.get("node") else None
    except ValueError as e:
        flash(str(e), "error")
        num = None
    heard = db.execute("SELECT long_name, public_key FROM nodes WHERE num=?", (num,)).fetchone() if num else None
    if request.method == "POST" and num is not None:
        try:
            hashes = _pins()
            write(db, lambda d: registry.add(d, num, f.get("label", ""), current_app.station_now(),
                                             public_key=f.get("public_key", "").strip(), pin_hashes=hashes))
        except (ValueError, PinError) as e:
            flash(message(e), "error")
        else:
            flash(_("{label} registered; key pinned", label=f.get("label", "").strip()), "ok")
            return redirect(url_for("wearers.edit", num=num))
    return render_template("register.html", num=num, node_id=nodeids.node_id(num) if num else "",
                           heard_name=heard[0] if heard else None, heard_key=heard[1] if heard else None,
                           label=f.get("label") or (heard[0] if heard else ""))


def _change(num: int, fn, done: str):
    return act(fn, done, url_for("wearers.edit", num=num))


@bp.route("/<int:num>/pins", methods=["POST"])
@require("wearers")
def pins(num: int):
    try:
        hashes = _pins()
    except ValueError as e:
        flash(message(e), "error")
        return redirect(url_for("wearers.edit", num=num))
    return _change(num, lambda d, actor, at: registry.set_pins(d, num, hashes, actor, at), _("PINs saved"))


@bp.route("/<int:num>/label", methods=["POST"])
@require("wearers")
def label(num: int):
    return _change(num, lambda d, actor, at: registry.set_label(d, num, request.form.get("label", ""), actor, at),
                   _("label saved"))


@bp.route("/<int:num>/retire", methods=["POST"])
@require("wearers")
def retire(num: int):
    if request.form.get("confirm") != "yes":
        flash(_("tick the box to confirm: alerts from this number will no longer count as the wearer's"), "error")
        return redirect(url_for("wearers.edit", num=num))
    try:
        write(current_app.station_db(), lambda d: registry.retire(d, num, _actor(), current_app.station_now()))
    except ValueError as e:
        flash(message(e), "error")
        abort(redirect(url_for("wearers.edit", num=num)))
    flash(_("bracelet retired"), "ok")
    return redirect(url_for("wearers.index"))
