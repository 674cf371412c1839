"""What the watch raises, in writer transactions, from what the database says.

A bracelet's silence is counted only while the station was listening (the radio connected): a
station that was off, or whose radio was unplugged, heard nothing, and that is not her silence.
Its alarm is raised once per silence: once resolved, the next one needs her bracelet heard
again first, else closing it would open it again. What counts as heard is any packet that
proved it is hers or came on the office channel (station/ingest.py); telemetry and positions
are never sealed with her key (trust.py), so someone holding the channel key can fake "alive"
for a while: the check-in, sealed with her key, is the signal that cannot be forged that way.

A watch alarm is an alert like a press for the room and the escalation chain, and never for the
public destinations (it says nothing the wearer chose to publish): it is created with the relay
marked done.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils
from meshtastic.protobuf import mesh_pb2

from station import incidents, trust
from station.decode.packets import is_checkin_text
from station.incidents import Effect, log_event
from station.watch.schedule import CheckinPlan, ScheduleError
from station.wording import Wording

SILENT, CHECKIN = "silent", "checkin"
WATCH_SOURCES = (SILENT, CHECKIN)
BATTERY_HYSTERESIS = 5        # percent above the threshold before a new low-battery warning
MAX_MISSED_CATCH_UP = 2000    # deadlines counted in one go after a long stop (a year of 4-hourly ones)


@dataclass(frozen=True)
class Defaults:
    """[watch] and the console's battery threshold: a wearer's own setting, when she has one, wins."""
    enabled: bool = True
    report_every_s: float = 900.0
    silent_alarm_s: float = 3600.0
    checkin_grace_s: float = 600.0
    checkin_word: str = "OK"
    low_battery: int = 20
    zone: str = "UTC"

    @classmethod
    def of(cls, cfg) -> "Defaults":
        w = cfg.watch
        return cls(w["enabled"], float(w["report_every_s"]), float(w["silent_alarm_after_s"]),
                   float(w["checkin_grace_s"]), w["checkin_word"], cfg.console["low_battery_percent"], w["time_zone"])


@dataclass(frozen=True)
class Wearer:
    num: int
    label: str
    watch: bool
    report_every_s: float
    silent_alarm_s: float
    plan: CheckinPlan | None
    added_at: float
    heard: float | None
    battery: int | None
    external_power: bool
    alarmed_heard: float | None
    silent_incident: int | None
    checkin_since: float | None
    last_checkin_at: float | None
    checkin_missed_at: float | None
    battery_warned: bool
    live_silent: int | None           # her unresolved silent alarm
    live_checkin: int | None

    def silence_from(self, listening_since: float) -> float:
        return max(self.heard if self.heard is not None else self.added_at, listening_since)

    def checkin_base(self) -> float:
        return max(x for x in (self.checkin_since, self.last_checkin_at, self.checkin_missed_at, self.added_at)
                   if x is not None)


def plan_of(every_s, start, end, zone: str) -> CheckinPlan | None:
    if not every_s:
        return None
    try:
        return CheckinPlan(float(every_s), start or "08:00", end or "20:00", zone)
    except ScheduleError:
        return None        # refused when set (settings.py); a hand-edited row must not stop the watch


def wearers(db: sqlite_utils.Database, d: Defaults) -> list[Wearer]:
    rows = db.execute(
        """SELECT b.node_num, b.label, b.watch, COALESCE(b.report_every_s, ?), COALESCE(b.silent_alarm_s, ?),
                  b.checkin_every_s, b.checkin_from, b.checkin_to, b.added_at, n.last_heard, n.battery_level,
                  COALESCE(n.external_power, 0), w.alarmed_heard, w.silent_incident, w.checkin_since,
                  w.last_checkin_at, w.checkin_missed_at, COALESCE(w.battery_warned, 0),
                  (SELECT MAX(id) FROM incidents i WHERE i.node_num=b.node_num AND i.source='silent'
                   AND i.state != 'resolved'),
                  (SELECT MAX(id) FROM incidents i WHERE i.node_num=b.node_num AND i.source='checkin'
                   AND i.state != 'resolved')
           FROM bracelets b LEFT JOIN nodes n ON n.num=b.node_num LEFT JOIN watch_state w ON w.node_num=b.node_num""",
        (d.report_every_s, d.silent_alarm_s)).fetchall()
    return [Wearer(r[0], r[1], bool(r[2]), r[3], r[4], plan_of(r[5], r[6], r[7], d.zone), r[8] or 0.0, r[9], r[10],
                   bool(r[11]), r[12], r[13], r[14], r[15], r[16], bool(r[17]), r[18], r[19]) for r in rows]


# -- what is due ---------------------------------------------------------------------------------
def silent_due(w: Wearer, now: float, listening_since: float | None) -> bool:
    if not w.watch or w.silent_alarm_s <= 0 or listening_since is None or w.live_silent is not None:
        return False
    heard_key = w.heard if w.heard is not None else -1.0
    return now - w.silence_from(listening_since) > w.silent_alarm_s and w.alarmed_heard != heard_key


def heard_again(w: Wearer) -> bool:
    return (w.silent_incident is not None and w.heard is not None
            and (w.alarmed_heard is None or w.heard > w.alarmed_heard))


def checkin_due(w: Wearer, now: float, grace_s: float) -> float | None:
    """The deadline she missed, if one is past with its grace."""
    if w.plan is None:
        return None
    due = w.plan.deadline(w.checkin_base())
    return due if now > due + grace_s else None


def battery_low(w: Wearer, low: int) -> bool | None:
    """True: warn now; False: the warning is over (charged, or plugged in); None: no change."""
    is_low = w.battery is not None and not w.external_power and w.battery <= low
    if is_low and not w.battery_warned:
        return True
    if w.battery_warned and (w.external_power or (w.battery is not None and w.battery > low + BATTERY_HYSTERESIS)):
        return False
    return None


def anything_due(ws: list[Wearer], now: float, d: Defaults, listening_since: float | None) -> bool:
    return any(silent_due(w, now, listening_since) or heard_again(w) or checkin_due(w, now, d.checkin_grace_s)
               or battery_low(w, d.low_battery) is not None for w in ws)


# -- raising -------------------------------------------------------------------------------------
def _clock(at: float | None, zone: str) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def _state(db: sqlite_utils.Database, num: int, **values) -> None:
    cols = ", ".join(values)
    db.execute(f"INSERT INTO watch_state (node_num, {cols}) VALUES (?{', ?' * len(values)}) "
               f"ON CONFLICT(node_num) DO UPDATE SET " + ", ".join(f"{c}=excluded.{c}" for c in values),
               (num, *values.values()))


def _open(db: sqlite_utils.Database, num: int, source: str, at: float, drill: bool, message: str) -> int:
    """An alert raised by the station about her, with her last known position and its age."""
    last = incidents.last_fix(db, num)
    lat, lon, fix_at, fix_source, bits = last if last else (None, None, None, None, None)
    cur = db.execute(
        """INSERT INTO incidents (node_num, opened_at, last_press_at, press_count, source, state, trust, duress, drill,
               lat, lon, fix_at, fix_source, fix_precision_bits, message, proof, relay_planned, relay_followed_up)
           VALUES (?,?,?,0,?,'open',?,0,?,?,?,?,?,?,?,'station',1,1)""",
        (num, at, at, source, trust.REGISTERED, int(drill), lat, lon, fix_at, fix_source, bits, message[:200]))
    return cur.lastrowid


def sweep(db: sqlite_utils.Database, now: float, d: Defaults, listening_since: float | None,
          drill: bool) -> list[Effect]:
    effects: list[Effect] = []
    for w in wearers(db, d):
        if silent_due(w, now, listening_since):
            effects.append(_raise_silent(db, w, now, listening_since, d, drill))
        elif heard_again(w):
            log_event(db, w.silent_incident, now, "station", "bracelet heard again",
                      Wording("{label}: heard at {at}; the alert stays open until someone closes it",
                              label=w.label, at=_clock(w.heard, d.zone)))
            _state(db, w.num, silent_incident=None)
        missed = checkin_due(w, now, d.checkin_grace_s)
        if missed is not None:
            effect = _raise_missed(db, w, missed, now, d, drill)
            if effect is not None:
                effects.append(effect)
        battery = battery_low(w, d.low_battery)
        if battery is True:
            log_event(db, None, now, "station", "battery low",
                      Wording("{label}: battery {n}%, not on external power; ask her to charge it before it falls silent",
                              label=w.label, n=w.battery))
        if battery is not None:
            _state(db, w.num, battery_warned=int(battery))
    return effects


def _raise_silent(db, w: Wearer, now: float, listening_since: float, d: Defaults, drill: bool) -> Effect:
    since = w.silence_from(listening_since)
    iid = _open(db, w.num, SILENT, now, drill, f"not heard since {_clock(w.heard, d.zone)}")
    log_event(db, iid, now, "station", "bracelet silent",
              Wording("{label}: nothing heard for {minutes} min (she reports every {every} min); last heard {heard}, "
                      "battery {battery}{drill}", label=w.label, minutes=f"{(now - since) / 60:.0f}",
                      every=f"{w.report_every_s / 60:.0f}", heard=_clock(w.heard, d.zone),
                      battery="-" if w.battery is None else f"{w.battery}%",
                      drill=Wording("; drill") if drill else ""))
    _state(db, w.num, alarmed_heard=w.heard if w.heard is not None else -1.0, silent_incident=iid)
    return Effect("opened", iid, w.num, trust.REGISTERED)


def _raise_missed(db, w: Wearer, missed: float, now: float, d: Defaults, drill: bool) -> Effect | None:
    # After a long stop, every deadline that passed is counted, and the timer goes on from the last.
    n, last = 1, missed
    while n < MAX_MISSED_CATCH_UP:
        following = w.plan.deadline(last)
        if now <= following + d.checkin_grace_s:
            break
        n, last = n + 1, following
    _state(db, w.num, checkin_missed_at=last)
    detail = Wording("{label}: no check-in by {due} ({plan}); last check-in {last}{more}", label=w.label,
                     due=_clock(last, d.zone), plan=w.plan.describe(), last=_clock(w.last_checkin_at, d.zone),
                     more=Wording("; {n} deadlines missed while the station was not watching", n=n) if n > 1 else "")
    if w.live_checkin is not None:
        log_event(db, w.live_checkin, now, "station", "check-in missed", detail)
        return None
    iid = _open(db, w.num, CHECKIN, now, drill, f"no check-in by {_clock(last, d.zone)}")
    log_event(db, iid, now, "station", "check-in missed", detail)
    return Effect("opened", iid, w.num, trust.REGISTERED)


# -- check-ins -----------------------------------------------------------------------------------
def is_checkin(text: str, word: str) -> bool:
    return is_checkin_text(text or "", (word,))


def checkin(db: sqlite_utils.Database, packet: mesh_pb2.MeshPacket, at: float, d: Defaults) -> bool:
    """Her check-in (the text is the check-in word): it counts only sealed with her pinned key,
    since anyone with the channel key can send "OK" under her number and hide a missed check-in.
    Whether the sender is a registered bracelet (the text was hers to take)."""
    num = getattr(packet, "from")
    row = db.execute("SELECT label, public_key FROM bracelets WHERE node_num=?", (num,)).fetchone()
    if row is None:
        return False
    label, key = row
    proof = trust.proof_of(packet, key, False)
    live = db.execute("SELECT MAX(id) FROM incidents WHERE node_num=? AND source='checkin' AND state != 'resolved'",
                      (num,)).fetchone()[0]
    if proof.how != trust.KEY:
        log_event(db, live, at, "station", "check-in ignored",
                  Wording("{label}: a check-in counts only as a direct message to the station sealed with her "
                          "bracelet's key ({reason})", label=label, reason=proof.reason or "sent on the channel"))
        return True
    _state(db, num, last_checkin_at=at)
    if live is not None:
        # Late, or sent under threat: the alert stays open for a person to close (her cancel with
        # her PIN closes it, and her duress PIN works there as everywhere).
        log_event(db, live, at, "wearer", "checked in",
                  Wording("{label}: check-in received after the alarm; call her before closing it", label=label))
    else:
        log_event(db, None, at, "wearer", "checked in", label)
    return True
