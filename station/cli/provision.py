"""`station bracelets provision`: a bracelet plugged in by USB, checked, set to the office's
profile, read back and registered with its key pinned from the device itself."""

from __future__ import annotations

import getpass
import time

import click

from station import press_tests, registry
from station.cli.common import ask_pins, load_config, open_db, write, station_now
from station.cli.press_test import run_press_test
from station.incidents import log_event
from station.radio import configure, provision
from station.radio.admin import AdminRefused, RadioAdmin
from station.radio.info import RadioInfo
from station.radio.link import LinkDown
from station.radio.ports import RadioUnavailable
from station.radio.profile import MeshProfile, ProfileError
from station.radio.session import bench_session
from station.storage import records
from station.wording import Wording


def register(grp: click.Group) -> None:
    @grp.command("provision")
    @click.option("--port", "port", required=True, help="The bracelet's USB serial device (e.g. /dev/ttyACM0).")
    @click.option("--label", required=True, help="Name the office knows the wearer by (never published as is).")
    @click.option("--pins-stdin", is_flag=True, help="Read the cancel PIN and the duress PIN from two lines of stdin "
                                                     "(else they are asked at a hidden prompt).")
    @click.option("--press-test", is_flag=True, help="Then wait for a press of the bracelet's button over the mesh "
                                                     "(station bracelets press-test).")
    @click.option("--by", default=None, help="Who provisions, for the event log (default: your login).")
    @click.pass_context
    def provision_cmd(ctx: click.Context, port: str, label: str, pins_stdin: bool, press_test: bool,
                      by: str | None) -> None:
        """Check a bracelet plugged in by USB, set it to the mesh profile with the alert method
        that fits its model, read it back, and register it with its key pinned."""
        by = by or getpass.getuser()
        cfg = load_config(ctx)
        profile = MeshProfile.from_config(cfg)
        db = open_db(ctx)
        got = records.get_state(db, "radio_info")
        if not got or not got[0].get("public_key"):
            raise click.ClickException("the station's radio has not been seen yet: start the station with its radio "
                                       "first (the bracelet takes its key as its admin key)")
        station = RadioInfo.from_state(got[0])
        try:
            with bench_session(port, cfg) as link:
                info = link.radio_info
                click.echo(f"bracelet {info.node}: {info.hw_model}, firmware {info.firmware}, "
                           f"key {info.key_fingerprint or 'none'}")
                try:
                    method = provision.check(info, profile)
                except provision.Refused as e:
                    raise click.ClickException(f"refused: {e}") from None
                if db.execute("SELECT 1 FROM bracelets WHERE node_num=?", [int(info.node[1:], 16)]).fetchone():
                    raise click.ClickException(f"{info.node} is already registered: station bracelets remove "
                                               f"{info.node} first to provision it again")
                pin_hashes = ask_pins(ctx, pins_stdin)
                click.echo(f"alert method: {method.kind.replace('_', ' ')} ({method.wiring})")
                admin = RadioAdmin(link)
                started = time.time()
                provision.apply(admin, profile, method, station, label)
                after = configure.wait_for_new_handshake(link, started, 90)
                if after is None:
                    raise click.ClickException("the bracelet did not come back after its reboot")
                problems = provision.verify(admin, after, profile, method, station, info.public_key)
        except (RadioUnavailable, ProfileError) as e:
            raise click.ClickException(str(e)) from None
        except (LinkDown, AdminRefused) as e:
            raise click.ClickException(f"the bracelet stopped answering: {e}; nothing was registered") from None
        if problems:
            raise click.ClickException("the bracelet did not take its profile: " + "; ".join(problems)
                                       + "; nothing was registered")
        num = int(after.node[1:], 16)

        def store(d):
            registry.add(d, num, label, station_now(), public_key=after.public_key, pin_hashes=pin_hashes)
            registry.note_device(d, num, after.hw_model, after.firmware, station_now())
            log_event(d, None, station_now(), by, "bracelet provisioned",
                      Wording("{node} ({model}, firmware {firmware}) as {label}, key {key}, {method}", node=after.node,
                              model=after.hw_model, firmware=after.firmware, label=label, key=after.key_fingerprint,
                              method=method.kind))
        try:
            write(db, store)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"provisioned and registered {after.node} as {label!r}, key {after.key_fingerprint} pinned")
        if press_test:
            run_press_test(ctx, num, by, press_tests.WINDOW_S)
        else:
            click.echo(f"next: station bracelets press-test {after.node}, and press its button")
