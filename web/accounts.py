"""The administrators' page: console accounts added, disabled, unlocked, given a new password
or role, and their sessions ended, all in the browser (passwords only ever in password fields)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from station import users
from web.i18n import gettext as _
from web.security import require
from web.transactions import act

bp = Blueprint("accounts", __name__, url_prefix="/users")


@bp.route("/")
@require("users")
def index():
    return render_template("accounts.html", accounts=users.accounts(current_app.station_db(),
                                                                     current_app.station_now()),
                           roles=users.ROLES, min_password=users.MIN_PASSWORD)


def _do(fn, done: str):
    return act(fn, done, url_for("accounts.index"))


@bp.route("/add", methods=["POST"])
@require("users")
def add():
    f = request.form
    name, role, password = f.get("name", "")[:64], f.get("role", ""), f.get("password", "")[:256]
    if password != f.get("again", ""):
        flash(_("The two passwords differ."), "error")
        return redirect(url_for("accounts.index"))
    return _do(lambda d, actor, at: users.add(d, name, role, password, at, actor),
               _("user {name} added ({role})", name=name, role=_(role)))


@bp.route("/<name>/<action>", methods=["POST"])
@require("users")
def change(name: str, action: str):
    f = request.form
    if action == "password":
        password = f.get("password", "")[:256]
        if password != f.get("again", ""):
            flash(_("The two passwords differ."), "error")
            return redirect(url_for("accounts.index"))
        return _do(lambda d, actor, at: users.set_password(d, name, password, at, actor),
                   _("password of {name} changed; its sessions ended", name=name))
    actions = {
        "role": (lambda d, actor, at: users.set_role(d, name, f.get("role", ""), at, actor),
                 _("{name} is now {role}", name=name, role=_(f.get("role", "")))),
        "disable": (lambda d, actor, at: users.set_disabled(d, name, True, at, actor), _("{name} disabled", name=name)),
        "enable": (lambda d, actor, at: users.set_disabled(d, name, False, at, actor), _("{name} enabled", name=name)),
        "unlock": (lambda d, actor, at: users.unlock(d, name, at, actor), _("{name} unlocked", name=name)),
        "revoke": (lambda d, actor, at: users.revoke(d, name, at, actor), _("sessions of {name} ended", name=name)),
    }
    if action not in actions:
        return redirect(url_for("accounts.index"))
    return _do(*actions[action])
