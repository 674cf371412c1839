"""The console's app factory: `create_app(config)`."""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from pathlib import Path

from flask import Flask, g, render_template
from werkzeug.exceptions import HTTPException

from station import runtime
from station.config import Config
from station.storage import db as dbmod
from station.storage.migrations import migrate
from station.radio import reasons
from station.decode import precision
from web import i18n, security
from web.throttle import LoginGuard
from web.i18n import N_
from web.i18n import gettext as _


ERRORS = {
    400: (N_("Bad request"), N_("This request is missing something the page needs.")),
    403: (N_("Not allowed"), N_("Your role may not do this.")),
    503: (N_("Station busy"), N_("The station cannot answer this now: try again in a moment.")),
    404: (N_("Not found"), N_("There is nothing at this address.")),
    405: (N_("Not allowed"), N_("This address does not take that kind of request.")),
}


RESERVED_THREADS = 16


def _secret_key(cfg: Config) -> bytes:
    path = Path(cfg.console["secret_file"]) if cfg.console["secret_file"] else cfg.database_path.with_name("console.key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def create_app(cfg: Config) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(cfg),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=cfg.console["secure_cookies"],
        SESSION_COOKIE_NAME="station_session",
        IDLE_SECONDS=cfg.console["idle_minutes"] * 60,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.station_config = cfg
    app.extensions["login_guard"] = LoginGuard()
    from web.stream import EventHub
    # Streams may take all but a reserve of waitress's threads: pages and actions always get one.
    app.extensions["event_hub"] = EventHub(cfg.database_path, max_streams=max(1, cfg.console["threads"] - RESERVED_THREADS))
    db = dbmod.connect(cfg.database_path)
    migrate(db)
    db.conn.close()

    def station_db():
        """One connection per request; the daemon writes through its own (WAL: readers never block)."""
        if "db" not in g:
            g.db = dbmod.connect(cfg.database_path, create=False)
        return g.db
    app.station_db = station_db
    # What the console writes is stamped on the daemon's clock (a GPS correction, a step whose
    # timers it is still moving), as the commands' is: one event log, one clock.
    app.station_now = lambda: runtime.station_now(cfg.database_path)

    @app.teardown_appcontext
    def close_db(exc):
        conn = g.pop("db", None)
        if conn is not None:
            conn.conn.close()

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    app.before_request(security.load_user)
    app.after_request(security.headers)

    @app.after_request
    def server_timing(response):
        # The server's own time for this request, for operators' tools and the benchmark.
        if "started" in g:
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - g.started) * 1000:.2f}"
        return response
    @app.context_processor
    def station_state():
        # Every page carries the banner and the open alerts, so the alarm and the warning are
        # there from the first paint, before the page's first poll.
        if g.get("user") is None:
            return {}
        from web.api import page_state
        try:
            return {"station_state": page_state()}
        except sqlite3.Error as e:
            return {"station_state": {"banner": [{"level": "critical", "key": "console-database", "remedy": "",
                                                  "text": _("The console cannot read the database: {error}",
                                                            error=str(e))}]}}
    app.jinja_env.globals["csrf_token"] = security.csrf_token
    i18n.init(app)
    app.jinja_env.globals["_"] = i18n.gettext
    app.jinja_env.globals["ngettext"] = i18n.ngettext
    app.jinja_env.globals["station_time"] = app.station_now
    app.jinja_env.globals["station_tz"] = i18n.station_zone
    app.jinja_env.globals["lang"] = i18n.current
    app.jinja_env.filters["term"] = i18n.term
    app.jinja_env.filters["said"] = i18n.said
    app.jinja_env.filters["uncertainty"] = precision.describe
    app.jinja_env.filters["receipt_reason"] = reasons.plain

    from web import (accounts, alerts, api, auth, backups, exports, maps, network, pages, register, stream, technician,
                     wearers)
    app.register_blueprint(auth.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(backups.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(register.bp)
    app.register_blueprint(wearers.bp)
    app.register_blueprint(technician.bp)
    app.register_blueprint(maps.bp)
    app.register_blueprint(network.bp)
    app.jinja_env.globals["network_link"] = network.nav_link
    app.register_blueprint(alerts.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(stream.bp)

    @app.errorhandler(HTTPException)
    def refused(e):
        if e.code is None or e.code < 400:
            return e        # routing redirects (a missing trailing slash) pass through
        # Our own descriptions are translated where they are raised; Werkzeug's stock ones are not,
        # so each code gets a sentence of ours.
        title, stock = ERRORS.get(e.code, (e.name, e.description))
        text = i18n.gettext(stock) if e.description == type(e).description else e.description
        if _api():
            return {"error": text}, e.code
        return render_template("error.html", title=i18n.gettext(title), text=text), e.code

    @app.errorhandler(sqlite3.OperationalError)
    def database_busy(e):
        # A read that waited out busy_timeout: the same 503 page as a refused write.
        from web.transactions import busy
        return refused(busy(e))
    return app


def _api() -> bool:
    from flask import request
    return request.path.startswith("/api/")
