"""Login, logout, and the first-run page that creates the first administrator."""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from station import certificate, users
from web import first_run
from web.i18n import gettext as _, message
from web.security import local_target
from web.throttle import Busy, LoginGuard
from web.transactions import write

bp = Blueprint("auth", __name__)


def _client() -> str:
    return request.remote_addr or "?"


def _begin(user: users.User):
    csrf = session.get("csrf")
    session.clear()            # a new session at login: no fixation
    token = write(current_app.station_db(),
                  lambda d: users.start_session(d, user.name, current_app.station_now(), _client()))
    session.update(user=user.name, sid=token, seen=current_app.station_now(), csrf=csrf)


@bp.route("/login", methods=["GET", "POST"])
def login():
    db = current_app.station_db()
    if first_run.needed(db):
        return redirect(url_for("auth.setup"))
    error = None
    if request.method == "POST":
        name = request.form.get("name", "")[:64]
        password = request.form.get("password", "")[:256]
        guard: LoginGuard = current_app.extensions["login_guard"]
        try:
            guard.admit(_client())
            with guard.checking():
                # The password is checked before, and outside, the short transaction that records it.
                user = users.authenticate(db, name, password, current_app.station_now(), guard.decoy, write,
                                          client=_client())
        except Busy:
            return render_template("login.html", error=_("Too many login attempts: wait a few minutes."),
                                   fingerprint=_fingerprint()), 429
        if user is not None:
            _begin(user)
            return redirect(local_target(request.args.get("next")) or url_for("alerts.index"))
        error = _("Wrong name or password, or too many attempts: wait a few minutes.")
    return render_template("login.html", error=error, fingerprint=_fingerprint()), 200 if error is None else 401


def _fingerprint() -> str | None:
    return certificate.shown(current_app.station_config) if request.scheme == "https" else None


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """The first administrator, on a station with no account: the one-time code the console
    printed at start (and keeps in a file only root and the station can read) proves that
    whoever fills this form has the station in hand, not just a seat on the office LAN."""
    db = current_app.station_db()
    if not first_run.needed(db):
        return redirect(url_for("auth.login"))
    code_file = first_run.code_path(current_app.station_config)
    error = None
    if request.method == "POST":
        guard: LoginGuard = current_app.extensions["login_guard"]
        try:
            guard.admit(_client())
        except Busy:
            return render_template("setup.html", error=_("Too many attempts: wait a few minutes."),
                                   code_file=code_file), 429
        code = first_run.code(current_app.station_config)
        given = request.form.get("code", "").strip().upper().replace(" ", "")
        name, password = request.form.get("name", "")[:64], request.form.get("password", "")[:256]
        if not hmac.compare_digest(given.encode(), code.replace("-", "").encode()) and \
                not hmac.compare_digest(given.encode(), code.encode()):
            error = _("That is not the setup code this console printed.")
        elif password != request.form.get("again", ""):
            error = _("The two passwords differ.")
        else:
            try:
                write(db, lambda d: users.add_first_admin(d, name, password, current_app.station_now(),
                                                      f"setup from {_client()}"))
            except users.UserError as e:
                error = message(e)
            else:
                first_run.forget(current_app.station_config)
                user = users.get(db, name)
                _begin(user)
                return redirect(url_for("alerts.index"))
    return render_template("setup.html", error=error, code_file=code_file), 200 if error is None else 400


@bp.route("/logout", methods=["POST"])
def logout():
    token = session.get("sid")
    if token:
        # The cookie may have been copied: the session ends here, on the station, not just in this browser.
        write(current_app.station_db(), lambda d: users.end_session(d, token, current_app.station_now()))
    session.clear()
    return redirect(url_for("auth.login"))
