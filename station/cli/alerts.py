"""`station alerts list|show|ack|resolve`."""

from __future__ import annotations

import getpass

import click

from station import incidents, queries
from station.relay import outbox
from station.cli.common import age, emit_json, open_db, safe, table, when, write, station_now


def _flags(r: dict) -> str:
    f = []
    if r["duress"]:
        f.append("DURESS")
    if r["trust"] != "registered":
        f.append(r["trust"].upper())
    if r["drill"]:
        f.append("drill")
    return ",".join(f) or "-"


def _actor(by: str | None) -> str:
    return f"cli:{by or getpass.getuser()}"


def _act(ctx, fn):
    """One change to an alert, in its own transaction; refusals become operator messages."""
    try:
        return write(open_db(ctx), fn)
    except (incidents.IncidentError, outbox.OutboxError) as e:
        raise click.ClickException(str(e)) from None


def register(cli: click.Group) -> None:
    @cli.group("alerts")
    def alerts_grp() -> None:
        """Incidents raised by bracelets."""

    @alerts_grp.command("list")
    @click.option("--all", "include_resolved", is_flag=True, help="Include resolved alerts.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def list_cmd(ctx, include_resolved: bool, as_json: bool) -> None:
        """Open alerts, duress and unacknowledged first."""
        rows = queries.alerts(open_db(ctx), include_resolved=include_resolved)
        if as_json:
            emit_json(rows)
            return
        if not rows:
            click.echo("no open alerts" if not include_resolved else "no alerts")
            return
        table([[r["id"], r["state"] + (f" ({r['resolution']})" if r["resolution"] else ""), r["name"] or r["node_id"],
                _flags(r), when(r["opened_at"]), r["press_count"],
                f"{r['lat']:.5f},{r['lon']:.5f} ({age(r['fix_age_s'])} old)" if r["lat"] is not None else "no fix"]
               for r in rows], ["ID", "STATE", "WHO", "FLAGS", "OPENED", "PRESSES", "LAST POSITION"])

    @alerts_grp.command("show")
    @click.argument("alert_id", type=int)
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def show_cmd(ctx, alert_id: int, as_json: bool) -> None:
        """One alert with its event log, positions and receipts."""
        row = queries.alert(open_db(ctx), alert_id)
        if row is None:
            raise click.ClickException(f"there is no alert {alert_id}")
        if as_json:
            emit_json(row)
            return
        click.echo(f"alert {row['id']}: {safe(row['name'] or row['node_id'])} ({row['node_id']}) — {row['state']}"
                   + (f" ({row['resolution']})" if row["resolution"] else "") + f"  flags: {_flags(row)}")
        click.echo(f"  opened {when(row['opened_at'])} by {row['source']}, {row['press_count']} press(es)")
        if row["lat"] is not None:
            click.echo(f"  last position {row['lat']:.5f}, {row['lon']:.5f} ({row['fix_source']}, "
                       f"{age(row['fix_age_s'])} old)")
        else:
            click.echo("  no position known")
        if row["battery"]:
            click.echo(f"  battery {row['battery'][0]['battery_level']}%")
        click.echo("  events:")
        for e in row["events"]:
            click.echo(f"    {when(e['at'])}  {safe(e['actor'])}: {safe(e['action'])}"
                       + (f" — {safe(e['detail'])}" if e["detail"] else ""))
        for r in row["receipts"]:
            click.echo(f"  receipt '{safe(r['text'])}': {r['state']}" + (f" ({safe(r['reason'])})" if r["reason"] else ""))

    @alerts_grp.command("ack")
    @click.argument("alert_id", type=int)
    @click.option("--by", help="Who acknowledges (default: your login name).")
    @click.pass_context
    def ack_cmd(ctx, alert_id: int, by: str | None) -> None:
        """Acknowledge an alert: someone is on it (the buzzer stops)."""
        _act(ctx, lambda d: incidents.acknowledge(d, alert_id, _actor(by), station_now()))
        click.echo(f"alert {alert_id} acknowledged")

    @alerts_grp.command("approve")
    @click.argument("alert_id", type=int)
    @click.option("--by", help="Who approves (default: your login name). Each person counts once.")
    @click.pass_context
    def approve_cmd(ctx, alert_id: int, by: str | None) -> None:
        """Approve publication of an alert (the wearer's policy says how many approvals it needs)."""
        n = _act(ctx, lambda d: outbox.approve(d, alert_id, _actor(by), station_now()))
        click.echo(f"alert {alert_id}: {n} approval(s) recorded")

    @alerts_grp.command("withhold")
    @click.argument("alert_id", type=int)
    @click.option("--by", help="Who withholds (default: your login name).")
    @click.pass_context
    def withhold_cmd(ctx, alert_id: int, by: str | None) -> None:
        """Withhold publication of an alert: nothing not yet posted will be."""
        n = _act(ctx, lambda d: outbox.withhold(d, alert_id, _actor(by), station_now()))
        click.echo(f"alert {alert_id}: publication withheld ({n} pending post(s) cancelled)")

    @alerts_grp.command("resolve")
    @click.argument("alert_id", type=int)
    @click.option("--as", "resolution", required=True, type=click.Choice(incidents.RESOLUTIONS))
    @click.option("--by", help="Who resolves (default: your login name).")
    @click.option("--reason", help="Why it is closed (required for a DURESS alert).")
    @click.pass_context
    def resolve_cmd(ctx, alert_id: int, resolution: str, by: str | None, reason: str | None) -> None:
        """Close an alert: the wearer is safe, it was a false alarm, or a drill."""
        _act(ctx, lambda d: incidents.resolve(d, alert_id, resolution, _actor(by), station_now(), reason))
        click.echo(f"alert {alert_id} resolved: {resolution}")
