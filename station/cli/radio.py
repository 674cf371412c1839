"""`station radio simulate`: the virtual radio on a pty or TCP port, for demos and tests."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click

from station.radio.sim import SimRadio
from station.radio.virtual import scenarios


def register(cli: click.Group) -> None:
    @cli.group("radio")
    def grp() -> None:
        """Radio tools for technicians."""

    @grp.command("simulate")
    @click.option("--pty", "pty_path", type=click.Path(dir_okay=False),
                  help="Publish the virtual radio as a serial device at this path (a symlink to a pty).")
    @click.option("--tcp", "tcp_port", type=click.IntRange(0, 65535), help="Listen on 127.0.0.1:PORT instead.")
    @click.option("--scenario", default="demo", show_default=True, type=click.Choice(sorted(scenarios.SCENARIOS)))
    @click.option("--speed", type=float, default=1.0, show_default=True,
                  help="Scenario speed factor (0: no pauses).")
    @click.option("--corpus", type=click.Path(file_okay=False, exists=True),
                  help="The corpora folder, for --scenario corpus.")
    @click.option("--replay-last", type=int, default=0,
                  help="After each handshake resend this many delivered packets, as a radio replaying its queue.")
    @click.option("--record", type=click.Path(dir_okay=False),
                  help="Append every packet the station sends (receipts) to this file as JSON lines.")
    @click.option("--start-after", type=float, default=0.0, help="Wait this long before the scenario starts.")
    def simulate_cmd(pty_path, tcp_port, scenario, speed, corpus, replay_last, record, start_after) -> None:
        """Run a virtual Meshtastic radio that the station (or the meshtastic CLI) can connect to."""
        if (pty_path is None) == (tcp_port is None):
            raise click.UsageError("give exactly one of --pty PATH or --tcp PORT")
        sim = SimRadio(scenario, speed=speed, pty=pty_path, tcp=tcp_port,
                       corpus_dir=Path(corpus) if corpus else None, replay_last=replay_last,
                       start_delay_s=start_after)
        if record:
            out = open(record, "a", buffering=1)
            sim.radio.on_host_packet(lambda hp: out.write(json.dumps(
                {"at": hp.at, "to": hp.to, "id": hp.packet.id, "port": hp.packet.decoded.portnum,
                 "text": hp.text}) + "\n"))
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        sim.start()
        click.echo(f"virtual radio on {sim.port}, scenario {scenario!r}", err=True)
        stop.wait()
        sim.stop()
