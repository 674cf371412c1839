"""The console's own transaction helper: one change in one short transaction, and a database
that is locked (a backup, a stuck command) or unwritable becomes a clear 503 page that says
nothing was changed, never an "Internal Server Error" or a half-done action."""

from __future__ import annotations

import sqlite3

from flask import current_app, flash, g, redirect
from werkzeug.exceptions import ServiceUnavailable

from station.errors import Refusal
from web.i18n import gettext as _, message


class DatabaseBusy(ServiceUnavailable):
    pass


def busy(error: sqlite3.Error) -> DatabaseBusy:
    if "locked" in str(error) or "busy" in str(error):
        text = _("The database is busy (a backup or another command holds it): nothing was changed. Try again in a moment.")  # noqa: E501 (one string for the catalog)
    else:
        text = _("The database could not be written ({error}): nothing was changed.", error=str(error))
    return DatabaseBusy(description=text)


def write(db, fn):
    """Run `fn(db)` in its own BEGIN IMMEDIATE transaction (busy_timeout waits for the daemon)."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        raise busy(e) from None
    try:
        out = fn(db)
        db.execute("COMMIT")
        return out
    except sqlite3.OperationalError as e:
        db.execute("ROLLBACK")
        raise busy(e) from None
    except BaseException:
        db.execute("ROLLBACK")
        raise


def act(fn, done: str, back: str, refusals: tuple[type[Exception], ...] = (Refusal,)):
    """One console action: `fn(db, actor, at)` in its own transaction, stamped with the logged-in
    user and the station's clock; a refusal from the station's core is flashed as an error (in
    the reader's language), success as `done`; then back to the page at `back`."""
    try:
        write(current_app.station_db(), lambda d: fn(d, f"console:{g.user.name}", current_app.station_now()))
    except refusals as e:
        flash(message(e), "error")
    else:
        flash(done, "ok")
    return redirect(back)
