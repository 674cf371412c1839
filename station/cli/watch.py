"""`station bracelets watch [NODE]`: each wearer's watch (silence, check-ins), shown or set."""

from __future__ import annotations

import getpass

import click

from station.cli.common import emit_json, load_config, open_db, station_now, table, when, write
from station.nodeids import parse_node
from station.watch import settings
from station.watch.rules import Defaults


def register(grp: click.Group) -> None:
    @grp.command("watch")
    @click.argument("node", required=False)
    @click.option("--on/--off", "watch", default=None,
                  help="Whether her silence raises an alarm (off: travelling beyond the mesh, say).")
    @click.option("--report-every", metavar="MIN|default",
                  help="How often her bracelet reports, in minutes (else [watch] report_every_s).")
    @click.option("--silent-alarm", metavar="MIN|0|default",
                  help="Silent this many minutes: an alert through the escalation chain; 0: never.")
    @click.option("--checkin", "checkin_every_h", metavar="HOURS|0",
                  help="A check-in at least every HOURS within --from and --to; 0 turns check-ins off.")
    @click.option("--from", "checkin_from", metavar="HH:MM", help="When her check-in window opens (08:00).")
    @click.option("--to", "checkin_to", metavar="HH:MM", help="When it closes (20:00; earlier than --from: the "
                                                              "next day).")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def watch_cmd(ctx, node: str | None, as_json: bool, watch, report_every, silent_alarm, checkin_every_h,
                  checkin_from, checkin_to) -> None:
        """Show every wearer's watch, or set NODE's.

        A check-in is her direct message "OK" (the [watch] checkin_word) to the station, from the
        app paired with her bracelet or a T-Echo's canned message: it counts only sealed with her
        bracelet's key.
        """
        d = Defaults.of(load_config(ctx))
        db = open_db(ctx)
        given = {"watch": watch, "report_every_min": report_every, "silent_alarm_min": silent_alarm,
                 "checkin_every_h": checkin_every_h, "checkin_from": checkin_from, "checkin_to": checkin_to}
        changes = {k: v for k, v in given.items() if v is not None}
        if changes:
            if node is None:
                raise click.UsageError("give the NODE whose watch to set")
            try:
                num = parse_node(node)
                now = write(db, lambda t: settings.update(t, num, changes, f"cli:{getpass.getuser()}",
                                                          station_now(), d))
            except ValueError as e:
                raise click.ClickException(str(e)) from None
            click.echo(f"{node}: silence {'watched' if now.watch else 'not watched'}, reports every "
                       f"{now.report_every_min:g} min, alarm after "
                       f"{f'{now.silent_alarm_min:g} min' if now.silent_alarm_min else 'never'}, check-ins "
                       f"{now.checkin or 'none'}")
            return
        rows = settings.overview(db, d)
        if node is not None:
            try:
                num = parse_node(node)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="NODE") from None
            rows = [r for r in rows if r["node_num"] == num]
            if not rows:
                raise click.ClickException(f"{node} is not registered")
        if as_json:
            emit_json(rows)
            return
        if not d.enabled:
            click.echo("note: [watch] enabled = false: nothing below raises an alarm")
        table([[r["node_id"], r["label"], "yes" if r["watch"] else "no", f"{r['report_every_min']:g} min",
                f"{r['silent_alarm_min']:g} min" if r["silent_alarm_min"] else "never", r["checkin"] or "-",
                when(r["last_heard"]), when(r["last_checkin_at"]), when(r["next_checkin_due"]),
                ", ".join(f"alert {i}" for i in (r["silent_alarm_open"], r["checkin_alarm_open"]) if i) or "-"]
               for r in rows],
              ["NODE", "LABEL", "WATCHED", "REPORTS", "ALARM", "CHECK-INS", "LAST HEARD", "LAST CHECK-IN",
               "NEXT DUE", "OPEN"])
