"""Sessions, roles and CSRF for the console.

Every route needs a logged-in user except the login page and static files; every state-changing
request needs the session's CSRF token (form field `csrf_token` or header `X-CSRF-Token`) and
the permission its route declares. A session unused for `idle_minutes` ends.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import urllib.parse

from flask import abort, current_app, g, jsonify, redirect, request, session, url_for

from station import users
from web.i18n import gettext as _

PUBLIC_ENDPOINTS = {"auth.login", "auth.setup", "static"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def load_user() -> None:
    """before_request: who is this, is the session still alive, is the CSRF token right."""
    g.user = None
    name = session.get("user")
    if name:
        idle = current_app.config["IDLE_SECONDS"]
        now = current_app.station_now()
        seen = session.get("seen", 0)
        # A "seen" in the future is a clock set back since: the session ends rather than live on
        # for as long as the clock went back.
        if not (-5 <= now - seen <= idle):
            session.clear()
        else:
            # The cookie alone proves nothing: its session must still be live in the database
            # (it ends at logout, on a password change, when an administrator revokes it).
            g.user = users.session_user(current_app.station_db(), session.get("sid"))
            if g.user is None or g.user.name != name:
                g.user = None
                session.clear()
            else:
                session["seen"] = now
    if request.endpoint in PUBLIC_ENDPOINTS:
        if request.method not in SAFE_METHODS and request.endpoint != "static":
            _check_csrf()
        return None
    if g.user is None:
        if _wants_json():
            return jsonify(error=_("login required")), 401
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
    if request.method not in SAFE_METHODS:
        _check_csrf()
    return None


def _check_csrf() -> None:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    if not session.get("csrf") or not hmac.compare_digest(sent, session["csrf"]):
        abort(403, description=_("missing or wrong CSRF token: reload the page"))


def require(permission: str):
    """Route decorator: the logged-in user's role must grant `permission`."""
    def wrap(view):
        view.required_permission = permission

        @functools.wraps(view)
        def inner(*args, **kwargs):
            if g.user is None or not g.user.can(permission):
                abort(403, description=_("your role may not do this ({permission})", permission=_(permission)))
            return view(*args, **kwargs)
        return inner
    return wrap


def headers(response):
    """after_request: no inline scripts, no framing, no referrers, no sniffing."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def local_target(target: str | None) -> str | None:
    """`target` if it is a path on this console, else None: no open redirect. Browsers drop tabs
    and newlines from URLs and read a backslash as a slash, so "/%09/evil.example" and
    "/%5Cevil.example" lead to other sites; anything but a plain absolute path is refused."""
    if not target or any(ord(c) < 0x21 or c in "\\\x7f" for c in target):
        return None
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
