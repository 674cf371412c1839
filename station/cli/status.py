"""`station status`: is the daemon running, radio link, GPS fix and time, clock, database, counts."""

from __future__ import annotations

import click

from station import queries
from station.cli.common import age, emit_json, load_config, open_db, safe
from station.radio.profile import MeshProfile
from station.storage import db as dbmod


def register(cli: click.Group) -> None:
    @cli.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def status_cmd(ctx: click.Context, as_json: bool) -> None:
        """Show the station's health at a glance."""
        db = open_db(ctx)
        st = queries.status(db, MeshProfile.from_config(load_config(ctx)))
        st["database_check_now"] = dbmod.quick_check(db)
        if as_json:
            emit_json(st)
            return
        radio, gps, clock, station = st["radio"] or {}, st["gps"] or {}, st["clock"] or {}, st["station"] or {}
        c = st["counts"]
        lines = [
            ("daemon", "running" if st["daemon_running"] else
             f"NOT RUNNING (last status {age(st['status_age_s'])} ago)" if st["status_age_s"] is not None
             else "NOT RUNNING (never started with this database)"),
            ("radio", f"{radio.get('status', '-')} on {radio.get('port', '-')}"
             + (" [VIRTUAL RADIO: drills only]" if radio.get("virtual") else "")
             + (f" — {radio['error']}" if radio.get("error") else "")),
            ("firmware", _radio_info_line(st.get("radio_info"), st.get("radio_findings") or [])),
            ("gps", _gps_line(gps)),
            ("clock", f"{clock.get('source', '-')}" + (f" (GPS says the system clock is off by "
                                                       f"{clock['gps_delta_s']:+.1f} s)" if clock.get('gps_delta_s') else "")),
            ("database", _database_line(st, station)),
            ("alerts", f"{c['alerts_open']} open, {c['alerts_acknowledged']} acknowledged, {c['alerts_total']} total"),
            ("packets", f"{c['packets']} stored, {c['duplicates']} duplicates dropped"),
            ("nodes", f"{c['nodes']} heard, {c['bracelets']} registered bracelets"),
            ("rejected", ", ".join(f"{k}: {v}" for k, v in c["rejects"].items()) or "none"),
            ("relay", _relay_line(st.get("relay") or {}, c.get("outbox") or {})),
        ]
        network, uplink = st.get("network") or {}, st.get("uplink") or {}
        if network.get("enabled"):
            lines.append(("hub", (f"connected as {network.get('station')}" if network.get("connected") else
                                  f"NOT CONNECTED: {network.get('error') or '?'}")
                          + f"; {network.get('queue') or 0} events waiting, {network.get('unconfirmed') or 0} "
                            "not yet confirmed by the hub"))
        if uplink.get("enabled"):
            dropped = uplink.get("dropped") or {}
            lines.append(("uplink", (f"hearing {uplink.get('channel')} through {', '.join(uplink.get('gateways') or [])}"
                                     if uplink.get("connected") else f"NOT CONNECTED: {uplink.get('error') or '?'}")
                          + f"; {uplink.get('taken') or 0} packets taken, {sum(dropped.values())} envelopes dropped"
                          + "".join(f", {n} {why}" for why, n in sorted(dropped.items()))))
        for k, v in lines:
            click.echo(f"{k:<9} {safe(v)}")


def _database_line(st: dict, station: dict) -> str:
    line = f"{station.get('database', '-')}: quick_check {st['database_check_now']}"
    d = (st.get("database") or {}) if st["daemon_running"] else {}
    if d.get("state") == "unavailable":
        ingest = st.get("ingest") or {}
        line = (f"UNAVAILABLE to the daemon for {age(d.get('for_s'))}: {d.get('why')}; {d.get('held_changes', 0)} "
                f"changes held in memory ({ingest.get('held_alerts', 0)} alerts, ringing), "
                f"{ingest.get('spool_bytes', 0)} bytes kept in the spool; " + line)
    return line


def _radio_info_line(info: dict | None, findings: list[dict]) -> str:
    if not info:
        return "not known yet (the radio has not completed a handshake)"
    primary = info.get("primary") or {}
    chan = f"primary channel {primary.get('name', '?')} " + ("(PUBLIC)" if primary.get("public") else "(private)")
    line = (f"{info['firmware'] or '?'} on {info['hw_model']}, {info['region']} {info['preset']}, {chan}, "
            f"PKI {'key ' + info['key_fingerprint'] if info['pki'] else 'off'}, "
            f"{info['keys']} keys in its node database of {info['nodedb_size']}")
    fails = [f for f in findings if f["level"] == "fail"]
    if findings:
        line += f"; {len(fails)} problem(s), {len(findings) - len(fails)} warning(s): station doctor"
    return line


def _gps_line(gps: dict) -> str:
    if not gps or not gps.get("enabled"):
        return "none configured"
    if not gps.get("connected"):
        return f"not connected on {gps.get('port')}: {gps.get('error') or 'opening'}"
    fix = gps.get("fix")
    if not fix:
        return f"no fix ({gps.get('sats') or 0} satellites)"
    return (f"{fix['lat']:.5f}, {fix['lon']:.5f} at {fix['time']} ({fix['kind']}, quality {gps.get('quality')}, "
            f"{gps.get('sats')} satellites, {age(fix.get('age_s'))} old)")


def _relay_line(relay: dict, outbox: dict) -> str:
    if not relay or relay.get("enabled") is False:
        return "no destinations configured"
    parts = ["internet " + ("up" if relay.get("online") else "DOWN")]
    for name, why in (relay.get("errors") or {}).items():
        parts.append(f"{name} UNUSABLE ({why})")
    if outbox:
        parts.append("outbox " + ", ".join(f"{n} {s}" for s, n in sorted(outbox.items())))
    if outbox.get("uncertain"):
        parts.append(f"{outbox['uncertain']} MAY HAVE BEEN POSTED: station outbox list")
    for name, b in (relay.get("budget") or {}).items():
        if b.get("budget") is not None:
            parts.append(f"{name} budget {b['used']:.2f} of {b['budget']:.2f} this month")
    return "; ".join(parts)
