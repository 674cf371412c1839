"""The `station` command: the daemon and the tools operators and technicians use."""

from __future__ import annotations

import os

import click

from station import __version__, at_rest
from station.cli import (alerts, backup, bracelets, console, doctor, drill, escalation, hub, maps, nodes, outbox,
                         radio, run, status, users)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file. Default: $STATION_CONFIG, then /etc/station/station.toml, "
                   "then built-in defaults (virtual radio when no radio is plugged in).")
@click.version_option(__version__, prog_name="station")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Base station for Meshtastic alarm bracelets.

    Receives alerts and positions from the radio, stores them durably, alerts the room and
    sends a receipt to the wearer. Start with `station demo` to see it work on the virtual
    radio, or `station run` for the daemon.
    """
    # Whatever a command creates (database, backups, keys, exports) is kept from other users.
    os.umask(at_rest.UMASK)
    ctx.obj = {"config_path": config_path}


for module in (run, status, alerts, nodes, bracelets, outbox, drill, escalation, backup, doctor, users, console, maps,
               radio, hub):
    module.register(cli)


def main() -> None:
    cli(prog_name="station")
