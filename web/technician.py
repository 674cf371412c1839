"""The technicians' page: the station's radio against the mesh profile, configure it (the
difference shown, then confirmed), a sealed backup of it to download, the bracelets with their
provisioning, press tests and checks over the mesh, and the firmware across the fleet.

Changes to the radio go through the daemon, which owns the serial port (radio jobs); a backup
borrows the port from it for the few seconds the read takes. Every action needs the `station`
permission (technicians and admins) and is written to the event log under the console user.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request, url_for

from station import press_tests, queries, registry
from web.transactions import write
from station.incidents import log_event
from station.radio import backup as radio_backup
from station.radio import firmware, jobs, lending
from station.radio.admin import AdminRefused, RadioAdmin
from station.radio.info import RadioInfo
from station.radio.link import LinkDown
from station.radio.ports import RadioUnavailable
from station.radio.profile import MeshProfile, ProfileError
from station.radio.session import radio_session
from station.storage import records
from web.i18n import N_
from web.i18n import gettext as _
from web.security import require
from station.wording import Wording

bp = Blueprint("technician", __name__, url_prefix="/technician")
BACKUP_LEND_S = 120.0
JOB_NAMES = {"configure": N_("configure the radio"), "bracelet_check": N_("check a bracelet over the mesh")}


def _actor() -> str:
    return f"console:{g.user.name}"


def _radio_info(db) -> RadioInfo | None:
    got = records.get_state(db, "radio_info")
    return RadioInfo.from_state(got[0]) if got else None


def _job_summary(kind: str, state: str, result: dict) -> str:
    if result.get("error"):
        return result["error"]
    if kind == "bracelet_check":
        prof = result.get("profile", {})
        answered = [k for k in ("position", "telemetry", "route") if "error" not in result.get(k, {"error": 1})]
        parts = [_("answered: {what}", what=", ".join(answered) or _("nothing"))]
        if prof.get("drift"):
            parts.append(_("differs: {fields}", fields=", ".join(d["field"] for d in prof["drift"])))
        if prof.get("fixed"):
            parts.append(_("profile written again"))
        if prof.get("error"):
            parts.append(prof["error"])
        return "; ".join(parts)
    if kind == "configure":
        return "; ".join(result.get("changed") or []) or (_("nothing to change") if state == "done" else "")
    return ""


def _jobs(db) -> list[dict]:
    rows = db.execute("SELECT id, kind, args, requested_by, requested_at, state, result FROM radio_jobs "
                      "WHERE kind NOT IN ('lend', 'take_back') ORDER BY id DESC LIMIT 10").fetchall()
    out = []
    for r in rows:
        result = json.loads(r[6] or "{}")
        args = json.loads(r[2] or "{}")
        out.append({"id": r[0], "kind": _(JOB_NAMES[r[1]]) if r[1] in JOB_NAMES else r[1], "node": f"!{args['node']:08x}" if "node" in args else "",
                    "by": r[3], "at": r[4], "state": r[5], "summary": _job_summary(r[1], r[5], result)})
    return out


def _fleet(bracelets: list[registry.Bracelet], minimum: str) -> list[dict]:
    counts: dict[str, int] = {}
    for b in bracelets:
        counts[b.firmware or ""] = counts.get(b.firmware or "", 0) + 1
    return [{"firmware": fw or _("unknown"), "count": n,
             "old": bool(fw) and firmware.version_tuple(fw) < firmware.version_tuple(minimum)}
            for fw, n in sorted(counts.items())]


def overview(db, cfg) -> dict:
    """What the page shows, also served as JSON (/api/radio)."""
    try:
        profile = MeshProfile.from_config(cfg)
        profile_error = ""
    except ProfileError as e:
        profile, profile_error = None, str(e)
    info = _radio_info(db)
    bracelets = registry.list_all(db)
    return {
        "info": info, "daemon": queries.status(db)["daemon_running"], "profile": profile,
        "profile_error": profile_error,
        "differences": profile.differences(info) if (profile and info) else [],
        "bracelets": bracelets, "tests": press_tests.latest(db),
        "waiting": {r[0] for r in db.execute("SELECT node_num FROM press_tests WHERE state='waiting' "
                                              "AND expires_at>?", (current_app.station_now(),)).fetchall()},
        "heard": {r[0]: r[1:] for r in db.execute("SELECT num, last_heard, hops, snr FROM nodes").fetchall()},
        "jobs": _jobs(db), "fleet": _fleet(bracelets, profile.min_firmware if profile else "0"),
        "min_firmware": profile.min_firmware if profile else "",
    }


@bp.route("/")
@require("station")
def index():
    return render_template("technician.html", **overview(current_app.station_db(), current_app.station_config),
                           min_passphrase=radio_backup.MIN_PASSPHRASE)


def _need_daemon(db) -> None:
    if not queries.status(db)["daemon_running"]:
        flash(_("the station daemon is not running: it holds the radio; start it, or use the command line"),
              "error")
        abort(redirect(url_for("technician.index")))


@bp.route("/configure", methods=["POST"])
@require("station")
def configure():
    db = current_app.station_db()
    if request.form.get("confirm") != "yes":
        flash(_("tick the box to confirm: the radio reboots and is silent for a few seconds"), "error")
        return redirect(url_for("technician.index"))
    _need_daemon(db)
    job = jobs.submit(db, "configure", {}, _actor())
    flash(_("radio job {n}: the daemon applies the mesh profile; the result appears below", n=job), "ok")
    return redirect(url_for("technician.index"))


@bp.route("/backup", methods=["POST"])
@require("station")
def backup():
    db = current_app.station_db()
    cfg = current_app.station_config
    passphrase = request.form.get("passphrase", "")
    if passphrase != request.form.get("passphrase2", ""):
        flash(_("the two passphrases differ"), "error")
        return redirect(url_for("technician.index"))
    if len(passphrase) < radio_backup.MIN_PASSPHRASE:
        flash(_("the passphrase must have at least {n} characters", n=radio_backup.MIN_PASSPHRASE), "error")
        return redirect(url_for("technician.index"))
    try:
        with lending.port_lent(db, _actor(), BACKUP_LEND_S):
            with radio_session(cfg) as link:
                info = link.radio_info
                b = radio_backup.read(RadioAdmin(link), info.node, info.firmware, info.hw_model,
                                      info.excluded_modules)
    except (lending.LendRefused, RadioUnavailable, LinkDown, AdminRefused) as e:
        flash(_("the radio's configuration could not be read: {error}", error=str(e)), "error")
        return redirect(url_for("technician.index"))
    sealed = radio_backup.seal(b, passphrase)
    name = f"station-radio-{info.node.lstrip('!')}-{time.strftime('%Y%m%d-%H%M')}.backup"
    write(db, lambda d: log_event(d, None, current_app.station_now(), _actor(), "radio backed up",
                                  Wording("{node}, key {key}, downloaded as {file}", node=info.node,
                                          key=info.key_fingerprint, file=name)))
    return Response(sealed, mimetype="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def _registered(db, num: int) -> registry.Bracelet:
    found = next((b for b in registry.list_all(db) if b.node_num == num), None)
    if found is None:
        abort(404)
    return found


@bp.route("/bracelets/<int:num>/check", methods=["POST"])
@require("station")
def check(num: int):
    db = current_app.station_db()
    _registered(db, num)
    _need_daemon(db)
    job = jobs.submit(db, "bracelet_check", {"node": num, "fix": request.form.get("fix") == "yes"}, _actor())
    flash(_("radio job {n}: the daemon asks the bracelet over the mesh; the result appears below", n=job), "ok")
    return redirect(url_for("technician.index"))


@bp.route("/bracelets/<int:num>/press-test", methods=["POST"])
@require("station")
def press_test(num: int):
    db = current_app.station_db()
    b = _registered(db, num)
    _need_daemon(db)
    write(db, lambda d: press_tests.start(d, num, _actor(), current_app.station_now()))
    flash(_("press the button of {label} now: the station listens for {n} s", label=b.label,
            n=int(press_tests.WINDOW_S)), "ok")
    return redirect(url_for("technician.index"))
