"""Stored code words in plain English. The database and the API keep the codes (`false_alarm`,
`alert_app`, `1km`); a coordinator reading the English pages sees words. Other languages
translate the codes in their catalogs (web/catalogs.py collects CODE_WORDS into them)."""

from __future__ import annotations

from station import incidents, registry, users
from station.relay import outbox

# Code words stored in the database or the status snapshot and shown on the pages (`|term`).
CODE_WORDS = {
    incidents.OPEN, incidents.ACKNOWLEDGED, incidents.RESOLVED, *incidents.RESOLUTIONS, *registry.TRUST,
    *outbox.STATES, *(c for choices in registry.CONSENT_CHOICES.values() for c in choices), *users.ROLES,
    *{p for perms in users.PERMISSIONS.values() for p in perms},
    "connecting", "connected", "down", "stopped", "unknown",                 # radio link
    "system", "gps", "ok",                                                   # clock source, database check
    "position_app", "nmea", "station_gps",                                   # where a fix came from
    "bell", "keyword", "alert_app", "detection_sensor", "serial", "button",  # how an alert came
    "silent", "checkin",                                                     # raised by the watch
    "queued", "sending", "delivered", "expired", "skipped", "relayed",       # receipts to the wearer
    "alert", "update", "resolution", "retraction",                           # outbox kinds
    "done", "running", "withdrawn", "failed",                                # radio jobs
    "wearer", "sender", "station", "relay", "press test",                    # who wrote an event
    "set",                                                                   # a PIN (in an event)
}

PLAIN_EN = {
    "false_alarm": "false alarm",
    "alert_app": "alert message (app)",
    "detection_sensor": "button (detection sensor)",
    "button": "button",
    "silent": "bracelet silent",
    "checkin": "missed check-in",
    "bell": "bell character",
    "keyword": "keyword in a message",
    "serial": "serial module",
    "position_app": "position from the bracelet",
    "nmea": "GPS sentence from the bracelet",
    "station_gps": "station's GPS",
    "at-once": "at once",
    "verified": "after verification",
    "never": "never",
    "pseudonym": "pseudonym",
    "real": "real name",
    "none": "none",
    "exact": "exact",
    "1km": "about 1 km",
    "10km": "about 10 km",
    "city": "city only",
    "ok": "OK",
    "gps": "GPS",
}
