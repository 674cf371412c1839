"""A wearer's watch settings, as the console's wearers page and `station bracelets watch` set
them: in minutes and hours (what an office thinks in), stored in seconds, each change in the log."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import sqlite_utils

from station.errors import Refusal
from station.incidents import log_event
from station.watch.rules import Defaults, plan_of
from station.watch.schedule import CheckinPlan, ScheduleError
from station.wording import Wording

FIELDS = ("watch", "report_every_min", "silent_alarm_min", "checkin_every_h", "checkin_from", "checkin_to")


class WatchError(Refusal):
    pass


@dataclass(frozen=True)
class Effective:
    """What applies to her, and where each value comes from (her own, or the station's default)."""
    watch: bool
    report_every_min: float
    report_every_own: bool
    silent_alarm_min: float           # 0: her silence never raises an alarm (the console still warns)
    silent_alarm_own: bool
    checkin: str | None               # "every 4 h from 08:00 to 20:00"
    checkin_every_h: float | None
    checkin_from: str | None
    checkin_to: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def effective(db: sqlite_utils.Database, num: int, d: Defaults) -> Effective | None:
    row = db.execute("SELECT watch, report_every_s, silent_alarm_s, checkin_every_s, checkin_from, checkin_to "
                     "FROM bracelets WHERE node_num=?", (num,)).fetchone()
    if row is None:
        return None
    plan = plan_of(row[3], row[4], row[5], d.zone)
    return Effective(bool(row[0]), (row[1] or d.report_every_s) / 60, row[1] is not None,
                     (d.silent_alarm_s if row[2] is None else row[2]) / 60, row[2] is not None,
                     plan.describe() if plan else None, plan.every_s / 3600 if plan else None,
                     plan.start if plan else None, plan.end if plan else None)


def _number(name: str, value, low: float, high: float) -> float | None:
    """None: back to the station's default (an empty form field, `default` on the command line)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "default")):
        return None
    try:
        n = float(value)
    except (TypeError, ValueError):
        raise WatchError("{field} must be a number", field=name) from None
    if not low <= n <= high:
        raise WatchError("{field} is from {low} to {high}", field=name, low=f"{low:g}", high=f"{high:g}")
    return n


def update(db: sqlite_utils.Database, num: int, changes: dict, actor: str, at: float, d: Defaults) -> Effective:
    """Validate and store; what now applies. Keys: FIELDS (a value of None or "" returns that
    field to the default; checkin_every_h 0 turns her check-ins off)."""
    row = db.execute("SELECT watch, report_every_s, silent_alarm_s, checkin_every_s, checkin_from, checkin_to "
                     "FROM bracelets WHERE node_num=?", (num,)).fetchone()
    if row is None:
        raise WatchError("{node} is not registered (station bracelets add first)", node=f"!{num:08x}")
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise WatchError("unknown watch field {field}", field=sorted(unknown)[0])
    cols = dict(zip(("watch", "report_every_s", "silent_alarm_s", "checkin_every_s", "checkin_from",
                     "checkin_to"), row))
    if "watch" in changes:
        cols["watch"] = int(bool(changes["watch"]))
    if "report_every_min" in changes:
        n = _number("report_every_min", changes["report_every_min"], 1, 1440)
        cols["report_every_s"] = None if n is None else n * 60
    if "silent_alarm_min" in changes:
        n = _number("silent_alarm_min", changes["silent_alarm_min"], 0, 10080)
        cols["silent_alarm_s"] = None if n is None else n * 60
    report_s = cols["report_every_s"] or d.report_every_s
    alarm_s = d.silent_alarm_s if cols["silent_alarm_s"] is None else cols["silent_alarm_s"]
    if alarm_s and alarm_s < 2 * report_s:
        # Two missed reports are what the console warns of; an alarm before that would ring for a
        # single packet lost to the radio.
        raise WatchError("the silent alarm ({alarm} min) must come after at least two missed reports ({two} min), "
                         "or be 0 for none", alarm=f"{alarm_s / 60:g}", two=f"{2 * report_s / 60:g}")
    before = (cols["checkin_every_s"], cols["checkin_from"], cols["checkin_to"])
    for key in ("checkin_from", "checkin_to"):
        if key in changes:
            cols[key] = (changes[key] or "").strip() or None
    if "checkin_every_h" in changes:
        n = _number("checkin_every_h", changes["checkin_every_h"], 0, 24)
        cols["checkin_every_s"] = n * 3600 if n else None
    if cols["checkin_every_s"]:
        try:
            CheckinPlan(cols["checkin_every_s"], cols["checkin_from"] or "08:00", cols["checkin_to"] or "20:00",
                        d.zone)
        except ScheduleError as e:
            raise WatchError("check-ins: {problem}", problem=str(e)) from None
    db.execute("UPDATE bracelets SET " + ", ".join(f"{k}=?" for k in cols) + " WHERE node_num=?",
               (*cols.values(), num))
    if cols["checkin_every_s"] and before != (cols["checkin_every_s"], cols["checkin_from"], cols["checkin_to"]):
        # A new schedule starts now: one set at 15:00 asks nothing for the hours before.
        db.execute("INSERT INTO watch_state (node_num, checkin_since) VALUES (?,?) ON CONFLICT(node_num) "
                   "DO UPDATE SET checkin_since=excluded.checkin_since", (num, at))
    now = effective(db, num, d)
    log_event(db, None, at, actor, "watch changed",
              Wording("{node}: silence {watch}, reports every {every} min, alarm after {alarm}, check-ins {checkin}",
                      node=f"!{num:08x}", watch=Wording("watched") if now.watch else Wording("not watched"),
                      every=f"{now.report_every_min:g}",
                      alarm=Wording("{n} min", n=f"{now.silent_alarm_min:g}") if now.silent_alarm_min else
                      Wording("never"), checkin=now.checkin or Wording("none")))
    return now


def overview(db: sqlite_utils.Database, d: Defaults) -> list[dict]:
    """Every wearer's watch, as the console and `station bracelets watch` show it: what applies,
    when she was last heard and checked in, and when her next check-in is due."""
    from station.watch import rules
    out = []
    for w in rules.wearers(db, d):
        e = effective(db, w.num, d)
        out.append({"node_num": w.num, "node_id": f"!{w.num:08x}", "label": w.label, **e.as_dict(),
                    "last_heard": w.heard, "battery_level": w.battery, "external_power": w.external_power,
                    "last_checkin_at": w.last_checkin_at,
                    "next_checkin_due": w.plan.deadline(w.checkin_base()) if w.plan else None,
                    "silent_alarm_open": w.live_silent,
                    "checkin_alarm_open": w.live_checkin})
    return sorted(out, key=lambda r: r["label"])
