"""The Backups page (technicians and admins): the backups on the backup medium, newest first,
and one taken now, exactly as `station backup` takes it (online, verified, sealed to the keys
kept off the station)."""

from __future__ import annotations

import datetime
from pathlib import Path

from flask import Blueprint, current_app, flash, g, redirect, render_template, url_for

from station import users
from station.storage import backup as bk
from web.i18n import gettext as _
from web.security import require
from web.transactions import write

bp = Blueprint("backups", __name__, url_prefix="/backups")


def _listing(folder: str) -> tuple[list[dict], str | None]:
    if not folder:
        return [], _("No backup folder is set ([backup] dir): backups cannot be taken.")
    path = Path(folder)
    if not path.is_dir():
        return [], _("The backup folder {folder} is not there: is the USB stick plugged in and mounted?", folder=folder)
    out = []
    for f in bk.backups(path):
        st = f.stat()
        out.append({"name": f.name, "size_mib": st.st_size / 2**20, "at": st.st_mtime,
                    "sealed": f.name.endswith(bk.SEALED)})
    return out, None


@bp.route("/")
@require("station")
def index():
    cfg = current_app.station_config
    found, problem = _listing(cfg.backup["dir"])
    newest_age_h = (datetime.datetime.now().timestamp() - found[0]["at"]) / 3600 if found else None
    return render_template("backups.html", backups=found, problem=problem, folder=cfg.backup["dir"],
                           keep=cfg.backup["keep"], recipients=len(cfg.backup["recipients"]),
                           newest_age_h=newest_age_h)


@bp.route("/now", methods=["POST"])
@require("station")
def now():
    cfg = current_app.station_config
    try:
        made = bk.configured(cfg)
    except bk.BackupError as e:
        flash(str(e), "error")
    else:
        write(current_app.station_db(), lambda d: users.audit(d, current_app.station_now(), f"console:{g.user.name}",
                                                               "database backed up", made.name))
        flash(_("backup written and verified: {name}", name=made.name), "ok")
    return redirect(url_for("backups.index"))
