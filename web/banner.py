"""The station-state banner on every console page: what is down, stale or degraded, and what to
do about it, so that a quiet alert list can never be mistaken for a dead station.

Read from the daemon's status snapshot (station/runtime.py) and two cheap counts; rendered into
every page and polled by the page every few seconds (/api/state), because a daemon that died
writes no event the live stream could carry.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from station import queries, runtime
from web.i18n import gettext as _, ngettext

# The daemon writes its snapshot every 2 s (station/daemon.py STATUS_EVERY_S); three missed
# writes is a dead or hung daemon, not a busy one. The page polls every 3 s: under 10 s in all.
STALE_AFTER_S = 6.0
CRITICAL, WARNING = "critical", "warning"


@dataclass(frozen=True)
class Problem:
    level: str
    key: str           # stable, for tests and for the page to tell one problem from another
    text: str
    remedy: str


def problems(database, db, cfg=None, now: float | None = None) -> list[Problem]:
    """The daemon first; what its snapshot says only while it is fresh; what the database says
    always. `now` is the station's clock (the wearers page flags on the same one)."""
    out = _daemon(database)
    return out + _uncertain(db) + (_bracelets(db, cfg, now or time.time()) if cfg is not None else [])


def _bracelets(db, cfg, now: float) -> list[Problem]:
    c = cfg.console
    w = queries.worries(db, now, cfg.watch["report_every_s"], c["low_battery_percent"])
    out = []
    if w["silent"]:
        out.append(Problem(WARNING, "silent-bracelets",
                           _("Silent bracelets: {names}", names=", ".join(b["label"] for b in w["silent"][:6])),
                           _("Call the wearers: a bracelet switched off or taken away sends nothing.")))
    if w["low_battery"]:
        out.append(Problem(WARNING, "low-battery",
                           _("Low battery: {names}", names=", ".join(f"{b['label']} ({b['battery_level']}%)"
                                                                      for b in w["low_battery"][:6])),
                           _("Ask the wearers to charge their bracelets.")))
    return out


def _daemon(database) -> list[Problem]:
    got = runtime.read_status(database)
    if got is None:
        return [Problem(CRITICAL, "daemon", _("The station daemon is not running: alerts are NOT being received."),
                        _("Start it: sudo systemctl start station (or station run)."))]
    snap, mtime = got
    age = runtime.age_of(snap, mtime)
    phase = (snap.get("station") or {}).get("phase")
    if phase != "running":
        return [Problem(CRITICAL, "daemon", _("The station daemon is stopped: alerts are NOT being received."),
                        _("Start it: sudo systemctl start station (or station run)."))]
    if age > STALE_AFTER_S:
        return [Problem(CRITICAL, "daemon",
                        _("The station daemon has not reported for {n} s: it may have hung or crashed.", n=int(age)),
                        _("Check it: sudo systemctl status station; restart it if it does not recover."))]
    out = []
    radio = snap.get("radio") or {}
    if radio.get("status") == "lent":
        out.append(Problem(WARNING, "radio-lent", _("The radio is lent to a technician's command: alerts wait on it."),
                           _("It comes back by itself within two minutes.")))
    elif radio.get("status") != "connected":
        detail = radio.get("error") or _(radio.get("status") or "unknown")
        out.append(Problem(CRITICAL, "radio",
                           _("The radio is not connected ({detail}): no alert from a bracelet can arrive.",
                             detail=detail),
                           _("Check the radio's USB cable and power; the station reconnects by itself.")))
    elif radio.get("virtual"):
        out.append(Problem(WARNING, "virtual-radio",
                           _("VIRTUAL RADIO: no real bracelet can reach this station; alerts here are drills."),
                           _("Plug in the station's radio: it is taken within seconds.")))
    database_state = snap.get("database") or {}
    if database_state.get("state") == "unavailable":
        out.append(Problem(CRITICAL, "database",
                           _("The database cannot be written ({why}) for {n} s: alerts are held in memory and the spool.",
                             why=database_state.get("why", "?"), n=int(database_state.get("for_s", 0))),
                           _("Free disk space or run station doctor; nothing is lost while the daemon runs.")))
    check = (snap.get("station") or {}).get("db_check")
    if check not in (None, "ok"):
        out.append(Problem(WARNING, "database-check", _("The database check found problems: {detail}", detail=check),
                           _("Run station doctor, and station backup now.")))
    out.extend(_relay(snap.get("relay") or {}))
    gps = snap.get("gps") or {}
    if gps.get("enabled") and not gps.get("connected"):
        out.append(Problem(WARNING, "gps", _("The station's GPS is not connected ({detail}).",
                                             detail=gps.get("error") or _("no data")),
                           _("Check the GPS cable; the station keeps its last position and the system clock.")))
    return out


def _uncertain(db) -> list[Problem]:
    uncertain = db.execute("SELECT COUNT(*) FROM outbox WHERE state='uncertain'").fetchone()[0]
    if not uncertain:
        return []
    return [Problem(WARNING, "uncertain-posts", ngettext("{n} post may have been published: nobody knows yet.",
                             "{n} posts may have been published: nobody knows yet.", uncertain),
                    _("Open the alert, check the destination and settle each post."))]


def _relay(relay: dict) -> list[Problem]:
    if not relay.get("enabled", True):
        return []
    out = []
    waiting = (relay.get("outbox") or {}).get("ready", 0)
    if relay.get("online") is False and waiting:
        out.append(Problem(WARNING, "offline",
                           ngettext("No internet: {n} post waits in the outbox.",
                                    "No internet: {n} posts wait in the outbox.", waiting),
                           _("They leave by themselves when the internet is back.")))
    if relay.get("errors"):
        out.append(Problem(WARNING, "relay-errors", _("The relay reports errors: {detail}",
                                                      detail="; ".join(f"{k}: {v}" for k, v in relay["errors"].items())[:300]),
                           _("Check the destinations' settings and credentials.")))
    return out


def as_json(found: list[Problem]) -> list[dict]:
    return [asdict(p) for p in found]
