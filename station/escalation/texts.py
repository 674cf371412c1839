"""What a notification says. Short enough for one SMS (160 GSM characters) in the usual case,
since a responder on a basic phone must read the essentials without opening anything: who, what,
where (exact: responders are the office's own people), how old that position is, the battery,
and what to reply. No link that needs the internet; coordinates any phone can paste."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils


@dataclass(frozen=True)
class Facts:
    iid: int
    ref: str
    label: str
    node: str
    kind: str              # alert, duress
    source: str            # the incident's source (keyword, alert_app, silent, checkin, ...)
    opened_at: float
    lat: float | None
    lon: float | None
    fix_at: float | None
    battery: int | None
    heard_at: float | None


def facts(db: sqlite_utils.Database, iid: int) -> Facts:
    row = db.execute(
        "SELECT i.id, COALESCE(e.ref, ''), COALESCE(b.label, n.long_name, ''), i.node_num, COALESCE(e.kind, 'alert'), "
        "i.source, i.opened_at, i.lat, i.lon, i.fix_at, n.battery_level, n.last_heard FROM incidents i "
        "LEFT JOIN escalations e ON e.incident_id = i.id LEFT JOIN bracelets b ON b.node_num = i.node_num "
        "LEFT JOIN nodes n ON n.num = i.node_num WHERE i.id=?", (iid,)).fetchone()
    return Facts(row[0], row[1], row[2], f"!{row[3]:08x}", row[4], row[5], row[6], row[7], row[8], row[9], row[10],
                 row[11])


def _clock(at: float, zone: str) -> str:
    return datetime.fromtimestamp(at, zoneinfo.ZoneInfo(zone)).strftime("%H:%M")


def _where(f: Facts, zone: str) -> str:
    if f.lat is None or f.lon is None:
        return "no position"
    return f"at {f.lat:.5f},{f.lon:.5f} ({_clock(f.fix_at, zone)})" if f.fix_at else f"at {f.lat:.5f},{f.lon:.5f}"


def _headline(f: Facts) -> str:
    if f.kind == "duress":
        return "DURESS"
    return {"silent": "SILENT", "checkin": "MISSED CHECK-IN"}.get(f.source, "SOS")


def compose(f: Facts, channel: str, step: int, ack_word: str, zone: str) -> str:
    head = _headline(f)
    who = f"{f.label} {f.node}".strip() if f.label else f.node
    parts = [f"{head} {who} {_clock(f.opened_at, zone)}", _where(f, zone)]
    if f.battery is not None:
        parts.append(f"batt {min(f.battery, 100)}%")
    if f.source in ("silent", "checkin") and f.heard_at:
        parts.append(f"last heard {_clock(f.heard_at, zone)}")
    if f.kind == "duress":
        # She was made to cancel: whoever holds her bracelet must not learn that help is coming.
        parts.append("cancel forced; do not message her bracelet")
    text = ", ".join(parts) + f". Reply {ack_word} {f.ref}"
    if channel == "email":
        text += ("\n\nAlert {iid} at the base station. Acknowledge it on the station's console, or reply "
                 "\"{ack} {ref}\" by SMS or from your Meshtastic node.").format(iid=f.iid, ack=ack_word, ref=f.ref)
    return text


def stand_down(f: Facts, state: str, by: str | None, zone: str) -> str:
    who = f.label or f.node
    return f"Alert {f.ref} ({who}) {state} by {by or 'the office'}; stand down unless told otherwise."


def subject(text: str) -> str:
    return text.split(". Reply", 1)[0][:120]
