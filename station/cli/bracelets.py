"""`station bracelets add|list|remove`: the registry of trusted bracelets."""

from __future__ import annotations

import time

import click

from station import registry
from station.cli.common import emit_json, open_db, table, when, write
from station.nodeids import node_id, parse_node
from station.pins import valid_pin


def _pin(ctx, param, value):
    if value is not None and not valid_pin(value):
        raise click.BadParameter("a PIN is 4 to 8 digits")
    return value


def register(cli: click.Group) -> None:
    @cli.group("bracelets")
    def grp() -> None:
        """Registered bracelets: only these raise trusted alerts."""

    @grp.command("add")
    @click.argument("node")
    @click.option("--label", required=True, help="Name the office knows the wearer by (never published as is).")
    @click.option("--public-key", help="The bracelet's Meshtastic public key (base64 or hex). Without it, "
                                       "the key is pinned when the bracelet is next heard.")
    @click.option("--cancel-pin", callback=_pin, help="PIN that cancels an alert (SAFE <PIN>).")
    @click.option("--duress-pin", callback=_pin, help="PIN that looks like a cancel but escalates the alert.")
    @click.pass_context
    def add_cmd(ctx, node: str, label: str, public_key: str | None, cancel_pin: str | None,
                duress_pin: str | None) -> None:
        """Register NODE (!b5a1e001, 0xb5a1e001 or decimal) as a bracelet."""
        try:
            num = parse_node(node)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="NODE") from None
        db = open_db(ctx)
        try:
            write(db, lambda d: registry.add(d, num, label, time.time(), public_key=public_key,
                                             cancel_pin=cancel_pin, duress_pin=duress_pin))
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        b = next(x for x in registry.list_all(db) if x.node_num == num)
        click.echo(f"registered {node_id(num)} as {label!r}; key "
                   + ("pinned" if b.public_key else "will be pinned when the bracelet is next heard"))

    @grp.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def list_cmd(ctx, as_json: bool) -> None:
        """Registered bracelets and their pinned keys."""
        rows = registry.list_all(open_db(ctx))
        if as_json:
            emit_json([{**b.__dict__, "node_id": node_id(b.node_num)} for b in rows])
            return
        if not rows:
            click.echo("no bracelets registered (station bracelets add NODE --label NAME)")
            return
        table([[node_id(b.node_num), b.label, (b.public_key[:12] + "…") if b.public_key else "not yet pinned",
                "yes" if b.has_cancel_pin else "no", "yes" if b.has_duress_pin else "no", when(b.added_at)]
               for b in rows], ["NODE", "LABEL", "KEY", "CANCEL PIN", "DURESS PIN", "ADDED"])

    @grp.command("remove")
    @click.argument("node")
    @click.pass_context
    def remove_cmd(ctx, node: str) -> None:
        """Remove NODE from the registry (its alerts become unverified)."""
        num = parse_node(node)
        if not write(open_db(ctx), lambda d: registry.remove(d, num)):
            raise click.ClickException(f"{node_id(num)} is not registered")
        click.echo(f"removed {node_id(num)}")
