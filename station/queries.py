"""Read-only questions the command line (and later the console) asks the database."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import sqlite_utils

from station import registry, runtime
from station.storage import records

RUNNING_IF_FRESHER_THAN_S = 10.0


def _rows(db: sqlite_utils.Database, sql: str, params: tuple = ()) -> list[dict]:
    cur = db.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def alerts(db: sqlite_utils.Database, *, include_resolved: bool = False, limit: int = 200,
           offset: int = 0, state: str | None = None, trust: str | None = None, node_num: int | None = None,
           since: float | None = None, until: float | None = None) -> list[dict]:
    """Duress first, then the verified wearers' alerts, then the rest: a flood of alerts from
    made-up or borrowed numbers never pushes a wearer's alert off the first page. `state`
    ("open", "acknowledged", "resolved") overrides `include_resolved`; the other filters narrow."""
    terms, params = [], []
    if state:
        terms.append("i.state = ?")
        params.append(state)
    elif not include_resolved:
        terms.append("i.state IN ('open', 'acknowledged')")
    for sql, value in (("i.trust = ?", trust), ("i.node_num = ?", node_num), ("i.opened_at >= ?", since),
                       ("i.opened_at < ?", until)):
        if value is not None:
            terms.append(sql)
            params.append(value)
    where = ("WHERE " + " AND ".join(terms)) if terms else ""
    rows = _rows(db, f"""
        SELECT i.id, i.node_num, printf('!%08x', i.node_num) AS node_id,
               {registry.INCIDENT_LABEL} AS name, i.state, i.resolution, i.trust, i.duress, i.drill,
               i.source, i.press_count, i.opened_at, i.last_press_at, i.lat, i.lon, i.fix_at, i.fix_source,
               i.fix_precision_bits, i.acknowledged_by, i.acknowledged_at, i.resolved_by, i.resolved_at
        FROM incidents i LEFT JOIN bracelets b ON b.node_num=i.node_num LEFT JOIN nodes n ON n.num=i.node_num
        {where} ORDER BY i.duress DESC, i.trust='registered' DESC, i.state='open' DESC, i.opened_at DESC
        LIMIT ? OFFSET ?""", (*params, limit, offset))
    now = time.time()
    for r in rows:
        r["fix_age_s"] = None if r["fix_at"] is None else round(now - r["fix_at"], 1)
    return rows


def alert(db: sqlite_utils.Database, iid: int) -> dict | None:
    row = _one_alert(db, iid)
    if row is None:
        return None
    row["events"] = _rows(db, "SELECT at, actor, action, detail, wording FROM events WHERE incident_id=? ORDER BY id", (iid,))
    row["positions"] = _rows(db, """SELECT received_at, fix_at, lat, lon, alt, sats, precision_bits, source, cached
        FROM positions WHERE node_num=? AND received_at >= ? ORDER BY id""", (row["node_num"], row["opened_at"] - 3600))
    row["receipts"] = _rows(db, "SELECT kind, text, state, reason, packet_id, attempts, updated_at FROM receipts "
                                "WHERE incident_id=? AND kind != 'escalation' ORDER BY id", (iid,))
    # Who beyond the room was told, how, and whether it reached them (station/escalation).
    row["notifications"] = _rows(db, "SELECT step, responder, channel, address, state, reason, attempts, sent_at, "
                                     "updated_at FROM notifications WHERE incident_id=? ORDER BY id", (iid,)) \
        if "notifications" in db.table_names() else []
    esc = _rows(db, "SELECT kind, ref, state, next_step, next_at, stopped_why FROM escalations WHERE incident_id=?",
                (iid,)) if "escalations" in db.table_names() else []
    row["escalation"] = esc[0] if esc else None
    row["battery"] = _rows(db, "SELECT received_at, battery_level, voltage FROM telemetry WHERE node_num=? "
                               "ORDER BY id DESC LIMIT 1", (row["node_num"],))
    return row


def _one_alert(db: sqlite_utils.Database, iid: int) -> dict | None:
    found = _rows(db, f"""
        SELECT i.*, printf('!%08x', i.node_num) AS node_id, {registry.INCIDENT_LABEL} AS name,
               n.short_name, n.hw_model, n.snr, n.rssi, n.hops
        FROM incidents i LEFT JOIN bracelets b ON b.node_num=i.node_num LEFT JOIN nodes n ON n.num=i.node_num
        WHERE i.id=?""", (iid,))
    if not found:
        return None
    row = found[0]
    row["fix_age_s"] = None if row["fix_at"] is None else round(time.time() - row["fix_at"], 1)
    return row


def bracelet_fixes(db: sqlite_utils.Database) -> list[dict]:
    """Registered bracelets with their last known position, for the overview map."""
    return _rows(db, """
        SELECT b.node_num, printf('!%08x', b.node_num) AS node_id, b.label, n.lat, n.lon, n.fix_at, n.last_heard
        FROM bracelets b JOIN nodes n ON n.num=b.node_num WHERE n.lat IS NOT NULL ORDER BY b.label""")


def nodes(db: sqlite_utils.Database) -> list[dict]:
    rows = _rows(db, """
        SELECT n.num, n.node_id, n.long_name, n.short_name, n.hw_model, n.last_heard, n.snr, n.rssi, n.hops,
               n.battery_level, n.voltage, n.lat, n.lon, n.fix_at, n.key_mismatch,
               b.label AS bracelet, n.public_key
        FROM nodes n LEFT JOIN bracelets b ON b.node_num=n.num ORDER BY n.last_heard DESC""")
    now = time.time()
    for r in rows:
        r["position_age_s"] = None if r["fix_at"] is None else round(now - r["fix_at"], 1)
    return rows


def wearers(db: sqlite_utils.Database, num: int | None = None, *, real_names: bool = False) -> list[dict]:
    """Registered bracelets with consent, policy, last heard and battery; whether PINs are set,
    never their hashes (these rows go to every reader of the console and its API). A wearer's
    real name only with `real_names`, for the roles that handle consent: a viewer's screen or a
    technician's laptop seized with the station must not name the people it protects."""
    rows = _rows(db, "SELECT b.*, printf('!%08x', b.node_num) AS node_id, n.last_heard, n.battery_level, "
                     "n.external_power, n.key_mismatch FROM bracelets b LEFT JOIN nodes n ON n.num=b.node_num"
                     + (" WHERE b.node_num=?" if num is not None else "") + " ORDER BY b.label",
                 () if num is None else (num,))
    for r in rows:
        r["has_cancel_pin"] = r.pop("cancel_pin_hash") is not None
        r["has_duress_pin"] = r.pop("duress_pin_hash") is not None
        if not real_names:
            r.pop("real_name", None)
    return rows


def worries(db: sqlite_utils.Database, now: float, report_every_s: float, low_battery: int) -> dict:
    """Registered bracelets the office should look at before an emergency: watched and silent for
    twice their reporting interval (hers, or `report_every_s`), or never heard; and on battery at
    `low_battery` percent or less (101 from the firmware is "on external power", stored as such)."""
    rows = db.execute("SELECT b.node_num, b.label, n.last_heard, n.battery_level, n.external_power, b.watch, "
                      "COALESCE(b.report_every_s, ?) FROM bracelets b LEFT JOIN nodes n ON n.num=b.node_num "
                      "ORDER BY b.label", (report_every_s,)).fetchall()
    silent = [{"node_num": r[0], "label": r[1], "last_heard": r[2]} for r in rows
              if r[5] and (r[2] is None or now - r[2] > 2 * r[6])]
    low = [{"node_num": r[0], "label": r[1], "battery_level": r[3]} for r in rows
           if r[3] is not None and not r[4] and r[3] <= low_battery]
    return {"silent": silent, "low_battery": low}


def radio_report(db: sqlite_utils.Database, profile=None) -> tuple[dict | None, list]:
    """What the station's radio said about itself at the last handshake (firmware, channels,
    keys), every combination with the registered bracelets that cannot work, and (given the
    mesh profile) every difference from it."""
    from station.radio import profile as profiles
    from station.radio.info import RadioInfo, findings
    got = records.get_state(db, "radio_info")
    if not got:
        return None, []
    info = RadioInfo.from_state(got[0])
    bracelets = db.execute("SELECT b.node_num, b.label, b.public_key, n.hw_model FROM bracelets b "
                           "LEFT JOIN nodes n ON n.num=b.node_num ORDER BY b.label").fetchall()
    found = findings(info, [tuple(r) for r in bracelets])
    if profile is not None:
        found += profiles.findings(profile, info)
    return info.as_status(), found


def database_file(db: sqlite_utils.Database) -> str:
    return next((row[2] for row in db.execute("PRAGMA database_list").fetchall() if row[1] == "main"), "")


def counts(db: sqlite_utils.Database) -> dict[str, Any]:
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "alerts_open": one("SELECT COUNT(*) FROM incidents WHERE state='open'"),
        "alerts_acknowledged": one("SELECT COUNT(*) FROM incidents WHERE state='acknowledged'"),
        # Incidents are never deleted, so the largest id is the count, without a scan; for packets
        # it is how many were ever stored (retention removes old ones).
        "alerts_total": one("SELECT COALESCE(MAX(id), 0) FROM incidents"),
        "packets": one("SELECT COALESCE(MAX(id), 0) FROM packets"),
        "duplicates": one("SELECT COALESCE(SUM(duplicates), 0) FROM packets WHERE duplicates > 0"),
        "nodes": one("SELECT COUNT(*) FROM nodes"),
        "bracelets": one("SELECT COUNT(*) FROM bracelets"),
        "outbox": dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()),
        "rejects": {f"{s}: {r}": n for s, r, n in db.execute(
            "SELECT source, reason, COUNT(*) FROM rejects GROUP BY source, reason ORDER BY 3 DESC").fetchall()},
    }


def status(db: sqlite_utils.Database, profile=None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # The daemon's snapshot lives in RAM (station/runtime.py), found from this database's path.
    path = database_file(db)
    got = runtime.read_status(path) if path else None
    snap, newest = got if got else ({}, 0.0)
    for key in ("station", "radio", "gps", "clock", "ingest", "indicators", "relay", "database", "escalation", "watch",
                "network", "uplink"):
        out[key] = snap.get(key)
    phase = (out.get("station") or {}).get("phase")
    info, problems = radio_report(db, profile)
    out["radio_info"] = info
    out["radio_findings"] = [dataclasses.asdict(f) for f in problems]
    age = runtime.age_of(snap, newest) if newest else None
    out["daemon_running"] = age is not None and phase == "running" and age < RUNNING_IF_FRESHER_THAN_S
    out["status_age_s"] = round(age, 1) if age is not None else None
    out["counts"] = counts(db)
    kept = records.get_state(db, "retention")
    out["retention"] = kept[0] if kept else None
    return out


def outbox(db: sqlite_utils.Database, *, include_done: bool = False, incident: int | None = None,
           limit: int = 500) -> list[dict]:
    terms, params = [], []
    if not include_done:
        terms.append("state NOT IN ('sent', 'cancelled')")
    if incident is not None:
        terms.append("incident_id = ?")
        params.append(incident)
    where = ("WHERE " + " AND ".join(terms)) if terms else ""
    return _rows(db, f"""SELECT id, incident_id, destination, kind, state, reason, text, attempts, remote_id, url,
                             cost, created_at, updated_at, sent_at, next_attempt_at, claim
                         FROM outbox {where} ORDER BY state='uncertain' DESC, priority, created_at LIMIT ?""",
                 (*params, limit))
