"""`station bracelets add|list|remove|...`: the registry of trusted bracelets."""

from __future__ import annotations

import getpass

import click

from station import press_tests, registry
from station.cli import bracelet_check, press_test, provision, watch
from station.cli.common import ask_pins, emit_json, open_db, table, when, write, station_now
from station.nodeids import node_id, parse_node


def _node(node: str) -> int:
    try:
        return parse_node(node)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="NODE") from None


def _consent_changes(f: dict) -> dict:
    """Command-line options to registry.set_consent fields."""
    out: dict = {}
    mapping = {"publish": "publish", "name_mode": "name_mode", "pseudonym": "pseudonym", "real_name": "real_name",
               "precision": "precision", "approvals": "approvals", "publish_after": "publish_after_min",
               "map_link": "map_link", "position_updates": "position_updates"}
    for opt, col in mapping.items():
        if f.get(opt) is not None:
            out[col] = f[opt]
    if f.get("no_publish_after"):
        out["publish_after_min"] = None
    if f.get("languages"):
        out["languages"] = f["languages"].split(",")
    return out


def _press_tested(t: press_tests.PressTest | None) -> str:
    if t is None:
        return "never"
    if t.state == "passed":
        return f"passed {when(t.passed_at)} ({t.path()})"
    return f"FAILED {when(t.expires_at)}"


def register(cli: click.Group) -> None:
    @cli.group("bracelets")
    def grp() -> None:
        """Registered bracelets: only these raise trusted alerts."""

    provision.register(grp)
    press_test.register(grp)
    bracelet_check.register(grp)
    watch.register(grp)

    @grp.command("add")
    @click.argument("node")
    @click.option("--label", required=True, help="Name the office knows the wearer by (never published as is).")
    @click.option("--public-key", required=True,
                  help="The bracelet's Meshtastic public key (base64 or hex), read from the device itself (the "
                       "app's or `meshtastic --info` on its USB port); never from what the mesh says.")
    @click.option("--pins", "ask", is_flag=True, help="Ask for the cancel PIN and the duress PIN at a hidden prompt.")
    @click.option("--pins-stdin", is_flag=True, help="Read the cancel PIN and the duress PIN from two lines of stdin.")
    @click.pass_context
    def add_cmd(ctx, node: str, label: str, public_key: str | None, ask: bool, pins_stdin: bool) -> None:
        """Register NODE (!b5a1e001, 0xb5a1e001 or decimal; quote it in bash) as a bracelet."""
        num = _node(node)
        pin_hashes = ask_pins(ctx, pins_stdin) if ask or pins_stdin else (None, None)
        db = open_db(ctx)
        try:
            write(db, lambda d: registry.add(d, num, label, station_now(), public_key=public_key,
                                             pin_hashes=pin_hashes))
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"registered {node_id(num)} as {label!r}; key pinned")

    @grp.command("pins")
    @click.argument("node")
    @click.option("--pins-stdin", is_flag=True, help="Read the cancel PIN and the duress PIN from two lines of stdin "
                                                     "(else they are asked at a hidden prompt).")
    @click.pass_context
    def pins_cmd(ctx, node: str, pins_stdin: bool) -> None:
        """Set NODE's cancel and duress PINs again (an empty answer removes one)."""
        num = _node(node)
        pin_hashes = ask_pins(ctx, pins_stdin)
        try:
            write(open_db(ctx), lambda d: registry.set_pins(d, num, pin_hashes, f"cli:{getpass.getuser()}",
                                                            station_now()))
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"{node_id(num)}: cancel PIN {'set' if pin_hashes[0] else 'none'}, "
                   f"duress PIN {'set' if pin_hashes[1] else 'none'}")

    @grp.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def list_cmd(ctx, as_json: bool) -> None:
        """Registered bracelets and their pinned keys."""
        db = open_db(ctx)
        rows = registry.list_all(db)
        tests = press_tests.latest(db)
        if as_json:
            emit_json([{**b.__dict__, "node_id": node_id(b.node_num),
                        "press_test": tests[b.node_num].__dict__ if b.node_num in tests else None} for b in rows])
            return
        if not rows:
            click.echo("no bracelets registered (station bracelets add NODE --label NAME)")
            return
        table([[node_id(b.node_num), b.label, (b.public_key[:12] + "…") if b.public_key else "NONE: nothing it sends is verified",
                "yes" if b.has_cancel_pin else "no", "yes" if b.has_duress_pin else "no", when(b.added_at),
                b.firmware or "?", _press_tested(tests.get(b.node_num))]
               for b in rows], ["NODE", "LABEL", "KEY", "CANCEL PIN", "DURESS PIN", "ADDED", "FIRMWARE", "PRESS TEST"])

    @grp.command("set")
    @click.argument("node")
    @click.option("--publish", type=click.Choice(["never", "verified", "at-once"]),
                  help="Publish alerts never, after verification, or at once (the Natalia model).")
    @click.option("--name", "name_mode", type=click.Choice(["pseudonym", "real", "none"]),
                  help="Which name a post may carry.")
    @click.option("--pseudonym", help="The name to publish when --name pseudonym.")
    @click.option("--real-name", help="The real name, published only with --name real.")
    @click.option("--precision", type=click.Choice(["exact", "1km", "10km", "city", "none"]),
                  help="How precise a published location may be.")
    @click.option("--map-link/--no-map-link", default=None, help="Whether a post may carry a map link.")
    @click.option("--languages", help="Comma-separated languages of the posts, e.g. en,fr.")
    @click.option("--approvals", type=click.IntRange(1, 10), help="Coordinator approvals needed (--publish verified).")
    @click.option("--publish-after", type=click.FloatRange(0, 10080),
                  help="Minutes after which a verified alert is published unless someone withholds it.")
    @click.option("--no-publish-after", is_flag=True, help="Only approvals publish (clears --publish-after).")
    @click.option("--position-updates/--no-position-updates", default=None,
                  help="Whether follow-up posts may carry a new position.")
    @click.pass_context
    def set_cmd(ctx, node: str, **fields) -> None:
        """Record NODE's consent and verification policy (what the relay may publish, and when)."""
        num = _node(node)
        changes = _consent_changes(fields)
        if not changes:
            raise click.UsageError("nothing to set: give at least one option (see --help)")
        try:
            stored = write(open_db(ctx), lambda d: registry.set_consent(d, num, changes, f"cli:{getpass.getuser()}",
                                                                        station_now()))
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        changes = stored
        click.echo(f"{node_id(num)}: " + ", ".join(f"{k} = {v if k != 'real_name' else '(set)'}"
                                                   for k, v in changes.items()))

    @grp.command("remove")
    @click.argument("node")
    @click.pass_context
    def remove_cmd(ctx, node: str) -> None:
        """Remove NODE from the registry (its alerts become unverified)."""
        num = _node(node)
        if not write(open_db(ctx), lambda d: registry.remove(d, num)):
            raise click.ClickException(f"{node_id(num)} is not registered")
        click.echo(f"removed {node_id(num)}")
