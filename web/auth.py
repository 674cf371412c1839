"""Login and logout."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from station import users
from station.cli.common import write
from web.i18n import gettext as _

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        name = request.form.get("name", "")[:64]
        password = request.form.get("password", "")[:256]
        db = current_app.station_db()
        user = write(db, lambda d: users.authenticate(d, name, password, time.time()))
        if user is not None:
            csrf = session.get("csrf")
            session.clear()            # a new session at login: no fixation
            session.update(user=user.name, seen=time.time(), csrf=csrf)
            target = request.args.get("next") or ""
            # Only paths on this console: never an open redirect.
            return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("alerts.index"))
        error = _("Wrong name or password, or too many attempts: wait a few minutes.")
    return render_template("login.html", error=error), 200 if error is None else 401


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))
