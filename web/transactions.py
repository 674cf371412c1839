"""The console's own transaction helper: one change in one short transaction, and a database
that is locked (a backup, a stuck command) or unwritable becomes a clear 503 page that says
nothing was changed, never an "Internal Server Error" or a half-done action."""

from __future__ import annotations

import sqlite3

from werkzeug.exceptions import ServiceUnavailable

from web.i18n import gettext as _


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
