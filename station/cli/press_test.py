"""`station bracelets press-test NODE`: the technician presses the bracelet's button and the
station must hear it over the mesh within a minute (station/press_tests.py). While the daemon runs
it hears the press (and chirps); otherwise this command listens on the radio itself."""

from __future__ import annotations

import contextlib
import getpass
import time

import click

from station import press_tests, queries, registry
from station.cli.common import load_config, open_db, write, station_now
from station.nodeids import node_id, parse_node
from station.radio.ports import RadioUnavailable
from station.radio.session import radio_session


def run_press_test(ctx: click.Context, num: int, by: str, window_s: float) -> press_tests.PressTest:
    db = open_db(ctx)
    label = next((b.label for b in registry.list_all(db) if b.node_num == num), None)
    if label is None:
        raise click.ClickException(f"{node_id(num)} is not a registered bracelet: provision it first")
    running = queries.status(db)["daemon_running"]
    listening = contextlib.nullcontext() if running else radio_session(load_config(ctx))
    try:
        with listening:
            test = write(db, lambda d: press_tests.start(d, num, by, station_now(), window_s))
            click.echo(f"press the button of {node_id(num)} ({label}) now: the station listens for "
                       f"{window_s:.0f} s" + ("" if running else " (the daemon is not running: this command "
                                                               "listens on the radio itself)"))
            t = press_tests.get(db, test)
            # The press is committed by whoever holds the radio; a little grace past the window
            # for a press heard at its very end to be written.
            while t.state == "waiting" and station_now() < t.expires_at + 2.0:
                time.sleep(0.2)
                t = press_tests.get(db, test)
    except RadioUnavailable as e:
        raise click.ClickException(str(e)) from None
    if t.state == "waiting":
        write(db, lambda d: press_tests.expire(d, test, station_now()))
        raise click.ClickException(
            f"no press from {node_id(num)} heard within {window_s:.0f} s. Check that the bracelet is on and "
            f"in range, that it took the office channel (station bracelets provision read it back), and the "
            f"station's radio (station radio check); then try again")
    if t.state != "passed":
        raise click.ClickException(f"the press test was {t.state} (another one was started for {node_id(num)})")
    day = time.strftime("%Y-%m-%d", time.localtime(t.passed_at))
    click.echo(f"press heard {t.passed_at - t.started_at:.0f} s after the test began, {t.path()}: "
               f"{label} is press-tested on {day} (a test: no alarm, nothing published)")
    return t


def register(grp: click.Group) -> None:
    @grp.command("press-test")
    @click.argument("node")
    @click.option("--window", type=click.FloatRange(10, 600), default=press_tests.WINDOW_S, show_default=True,
                  help="Seconds to wait for the press.")
    @click.option("--by", default=None, help="Who tests, for the event log (default: your login).")
    @click.pass_context
    def press_test_cmd(ctx: click.Context, node: str, window: float, by: str | None) -> None:
        """Press NODE's button: the station must hear it over the mesh within the window. The press
        is a test (a chirp, no alarm, never published) and the bracelet is recorded as press-tested
        with the path the press took (hops, SNR)."""
        try:
            num = parse_node(node)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="NODE") from None
        run_press_test(ctx, num, by or getpass.getuser(), window)
