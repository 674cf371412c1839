"""`station drill`: a synthetic alert end to end into the drill destination; prints PASS or FAIL."""

from __future__ import annotations

import time

import click

from station import incidents, queries
from station.cli.common import load_config, open_db, write, station_now
from station.clock import StationClock
from station.decode.packets import Alert
from station.relay.destinations.drill import DrillDestination

DRILL_NODE = 0xD0000001   # no bracelet has this number: it stands for "a drill"


def _open_drill_incident(db, at: float) -> int:
    return incidents.raise_alert(db, DRILL_NODE, Alert("drill", "station drill"), at, packet_row=None,
                                 fold_window_s=0, drill=True).incident_id


def register(cli: click.Group) -> None:
    @cli.command("drill")
    @click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the post.")
    @click.pass_context
    def drill_cmd(ctx, timeout: float) -> None:
        """Run a synthetic alert through the relay into the drill destination and check it arrived.

        Uses the running daemon's relay when there is one, else runs the relay here for the drill
        destination only. Nothing reaches a public account: drills go only to drill destinations.
        """
        cfg = load_config(ctx)
        drills = [d for d in cfg.destinations() if d.kind == "drill" and d.enabled]
        if not drills:
            raise click.ClickException("no drill destination is configured ([[destinations]] with kind = \"drill\")")
        db = open_db(ctx)
        running = queries.status(db)["daemon_running"]
        iid = write(db, lambda d: _open_drill_incident(d, station_now()))
        click.echo(f"drill alert {iid} opened; relaying through {'the running daemon' if running else 'a local relay'}")
        relay = writer = None
        if not running:
            from station.relay.service import Relay
            from station.storage.writer import Writer
            writer = Writer(cfg.database_path).start()
            only = cfg.with_overrides(destinations=[r for r in cfg.lists.get("destinations", [])
                                                    if r.get("kind") == "drill"])
            relay = Relay(only, writer, StationClock()).start()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                rows = db.execute("SELECT destination, state, reason, text FROM outbox WHERE incident_id=?",
                                  (iid,)).fetchall()
                if rows and all(r[1] in ("sent", "failed", "uncertain") for r in rows):
                    break
                time.sleep(0.2)
        finally:
            write(db, lambda d: d.execute(
                "UPDATE incidents SET state='resolved', resolution='drill', resolved_at=?, resolved_by='cli' "
                "WHERE id=?", (station_now(), iid)))
            if relay:
                time.sleep(0.5)   # let the drill's follow-up reach the drill file too
                relay.stop()
                writer.stop()
        problems = []
        names = {d.name for d in drills}
        if not rows:
            problems.append("no outbox row was planned for the drill")
        for dest, state, reason, text in rows:
            if dest not in names:
                problems.append(f"a drill was planned for the non-drill destination {dest}")
            elif state != "sent":
                problems.append(f"{dest}: {state} ({reason})")
        for d in drills:
            if not any(f"#{iid}" in rec.get("text", "") for rec in DrillDestination(d).read()):
                problems.append(f"{d.name}: the post is not in {d.path}")
        if problems:
            for p in problems:
                click.echo(f"FAIL: {p}")
            raise SystemExit(1)
        click.echo(f"PASS: drill alert {iid} reached {', '.join(sorted(names))}")
