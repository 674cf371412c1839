"""Stored code words in plain English. The database and the API keep the codes (`false_alarm`,
`alert_app`, `1km`); a coordinator reading the English pages sees words. Other languages
translate the codes in their catalogs (web/translations/LANG.json)."""

from __future__ import annotations

PLAIN_EN = {
    "false_alarm": "false alarm",
    "alert_app": "alert message (app)",
    "detection_sensor": "button (detection sensor)",
    "button": "button",
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
