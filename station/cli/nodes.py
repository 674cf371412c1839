"""`station nodes`: every node heard on the mesh."""

from __future__ import annotations

import click

from station import queries
from station.cli.common import age, emit_json, open_db, table, when


def register(cli: click.Group) -> None:
    @cli.command("nodes")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def nodes_cmd(ctx, as_json: bool) -> None:
        """Mesh nodes heard: last heard, signal, hops, battery, position age."""
        rows = queries.nodes(open_db(ctx))
        if as_json:
            emit_json(rows)
            return
        if not rows:
            click.echo("no nodes heard yet")
            return
        table([[r["node_id"], r["long_name"], r["short_name"], r["bracelet"] or "-",
                "IMPOSTOR?" if r["key_mismatch"] else "-", when(r["last_heard"]), r["snr"], r["rssi"], r["hops"],
                f"{r['battery_level']}%" if r["battery_level"] is not None else "-", age(r["position_age_s"])]
               for r in rows],
              ["NODE", "NAME", "SHORT", "BRACELET", "TRUST", "LAST HEARD", "SNR", "RSSI", "HOPS", "BATTERY", "POS AGE"])
