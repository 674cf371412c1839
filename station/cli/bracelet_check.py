"""`station bracelets check NODE [--fix]`: a registered bracelet checked over the mesh (position,
telemetry, traceroute, its config against the profile over remote admin), and with --fix its
profile written again. While the daemon runs it asks the daemon to do it (one owner of the port)."""

from __future__ import annotations

import getpass
import time

import click

from station import press_tests, queries, registry
from station.cli.common import age, emit_json, load_config, open_db, safe, station_now
from station.incidents import log_event
from station.nodeids import node_id, parse_node
from station.radio import bracelet_check, jobs
from station.radio.ports import RadioUnavailable
from station.radio.profile import MeshProfile, ProfileError
from station.radio.session import radio_session

def _heard(db, num: int) -> dict:
    row = db.execute("SELECT last_heard, hops, snr, rssi FROM nodes WHERE num=?", (num,)).fetchone()
    tel = db.execute("SELECT battery_level, voltage FROM telemetry WHERE node_num=? ORDER BY id DESC LIMIT 1",
                     (num,)).fetchone()
    out = {"last_heard": row[0], "hops": row[1], "snr": row[2], "rssi": row[3]} if row else {"last_heard": None}
    if tel:
        out.update(battery=tel[0], voltage=tel[1])
    return out


def _show(result: dict, label: str, heard: dict, tested) -> None:
    click.echo(f"{result['node']} ({safe(label)})")
    if heard.get("last_heard"):
        click.echo(f"  last heard {age(station_now() - heard['last_heard'])} ago, "
                   f"{'hops ?' if heard.get('hops') is None else str(heard['hops']) + ' hops'}, "
                   f"SNR {heard.get('snr')} dB" + (f", battery {heard['battery']}%" if heard.get("battery") else ""))
    else:
        click.echo("  never heard by the station")
    click.echo("  press test: " + ("never" if tested is None else
                                   f"passed {time.strftime('%Y-%m-%d', time.localtime(tested.passed_at))} "
                                   f"({tested.path()})" if tested.state == "passed" else "FAILED"))
    pos, tel, route, prof = result["position"], result["telemetry"], result["route"], result["profile"]
    click.echo("  position: " + (f"no answer ({pos['error']})" if "error" in pos else
                                 "answered, no GPS fix" if not pos["fix"] else
                                 f"answered, {pos['lat']:.4f}, {pos['lon']:.4f}"))
    click.echo("  telemetry: " + (f"no answer ({tel['error']})" if "error" in tel else
                                  f"battery {tel['battery']}%, {tel['voltage']} V" if not tel["external_power"]
                                  else "on external power"))
    if "error" in route:
        click.echo(f"  route: no answer ({route['error']})")
    if "error" not in tel and "error" in pos and "error" in route:
        # Telemetry goes as a PKI direct message; position and traceroute requests go on the
        # channel (Router.cpp:643-645): only the channel-encrypted ones fail.
        click.echo("  hint: it answers direct messages but not channel requests: it is probably not on the "
                   "same channel as the station's radio: station radio check")
    else:
        path = " -> ".join(["station", *route["towards"], result["node"]])
        snrs = ", ".join("?" if s is None else f"{s:.1f}" for s in route["snr_towards"])
        click.echo(f"  route: {path} ({route['hops']} relays; SNR per hop {snrs} dB)")
    if prof.get("firmware"):
        click.echo(f"  firmware {prof['firmware']} ({prof['hw_model']})")
    for d in prof.get("drift", []):
        click.echo(f"  differs: {d['field']} is {d['have']}, the profile wants {d['want']}")
    if prof.get("fixed"):
        still = prof.get("drift_after")
        click.echo("  re-configured over the mesh: " + ("now matches the profile" if still == [] else
                                                        f"still differs: {still}" if still else "not read back"))
    elif prof.get("drift"):
        click.echo(f"  remedy: station bracelets check {result['node']} --fix")
    if "error" in prof:
        click.echo(f"  configuration: {prof['error']}")


def register(grp: click.Group) -> None:
    @grp.command("check")
    @click.argument("node")
    @click.option("--fix", is_flag=True, help="Write the bracelet profile again over the mesh where it differs.")
    @click.option("--timeout", type=click.FloatRange(1, 300), default=bracelet_check.REQUEST_TIMEOUT_S,
                  show_default=True, help="Seconds to wait for each answer over the mesh.")
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--by", default=None, help="Who checks, for the event log (default: your login).")
    @click.pass_context
    def check_cmd(ctx: click.Context, node: str, fix: bool, timeout: float, as_json: bool, by: str | None) -> None:
        """Check registered bracelet NODE over the mesh: position, telemetry, the route (traceroute),
        its firmware and configuration against the mesh profile; exits 1 when it does not answer
        or differs."""
        by = by or getpass.getuser()
        try:
            num = parse_node(node)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="NODE") from None
        db = open_db(ctx)
        label = next((b.label for b in registry.list_all(db) if b.node_num == num), None)
        if label is None:
            raise click.ClickException(f"{node_id(num)} is not a registered bracelet")
        cfg = load_config(ctx)
        try:
            profile = MeshProfile.from_config(cfg)
        except ProfileError as e:
            raise click.ClickException(str(e)) from None
        if not as_json:
            click.echo(f"asking {node_id(num)} over the mesh (each question may take up to "
                       f"{timeout:.0f} s) ...", err=True)
        if queries.status(db)["daemon_running"]:
            result = jobs.wait(db, jobs.submit(db, "bracelet_check", {"node": num, "fix": fix, "timeout": timeout}, by),
                               16 * timeout + bracelet_check.COME_BACK_S)
            if "node" not in result:
                raise click.ClickException(f"the daemon did not check the bracelet: {result.get('error', '?')}")
        else:
            try:
                with radio_session(cfg) as link:
                    def record(action: str, detail: str) -> None:
                        with db.conn:
                            log_event(db, None, station_now(), by, action, detail)
                    def store(fn) -> None:
                        with db.conn:
                            fn(db)
                    result = bracelet_check.run(link, num, profile, fix=fix, record=record, timeout=timeout,
                                                store=store)
            except RadioUnavailable as e:
                raise click.ClickException(str(e)) from None
        heard = _heard(db, num)
        tested = press_tests.latest(db).get(num)
        if as_json:
            emit_json({**result, "label": label, "heard": heard,
                       "press_test": tested.__dict__ if tested else None})
        else:
            _show(result, label, heard, tested)
        if not result.get("ok"):
            raise SystemExit(1)
