"""Login and logout."""

from __future__ import annotations


from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from station import users
from station.cli.common import write
from web.i18n import gettext as _
from web.throttle import Busy, LoginGuard

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        name = request.form.get("name", "")[:64]
        password = request.form.get("password", "")[:256]
        db = current_app.station_db()
        guard: LoginGuard = current_app.extensions["login_guard"]
        try:
            guard.admit(request.remote_addr or "?")
            with guard.checking():
                # The password is checked before, and outside, the short transaction that records it.
                user = users.authenticate(db, name, password, current_app.station_now(), guard.decoy, write)
        except Busy:
            return render_template("login.html", error=_("Too many login attempts: wait a few minutes.")), 429
        if user is not None:
            csrf = session.get("csrf")
            session.clear()            # a new session at login: no fixation
            session.update(user=user.name, seen=current_app.station_now(), csrf=csrf)
            target = request.args.get("next") or ""
            # Only paths on this console: never an open redirect.
            return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("alerts.index"))
        error = _("Wrong name or password, or too many attempts: wait a few minutes.")
    return render_template("login.html", error=error), 200 if error is None else 401


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))
