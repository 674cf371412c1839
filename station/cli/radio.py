"""`station radio`: the technicians' group (info, check, configure: cli/radio_admin.py) and
`simulate`, the virtual radio on a pty or TCP port for demos and tests."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import click

from station.cli import radio_admin
from station.cli.flash import register_flash
from station.radio.sim import SimRadio
from station.radio.virtual import devices, firmware, scenarios


def register(cli: click.Group) -> None:
    @cli.group("radio")
    def grp() -> None:
        """Radio tools for technicians."""

    radio_admin.register(grp)
    radio_admin.register_backup(grp)
    register_flash(grp)

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
    @click.option("--wait-for-host", is_flag=True,
                  help="Start the scenario only once a host has connected (the radio keeps only 8 or 32 packets).")
    @click.option("--firmware", type=click.Choice(sorted(firmware.PROFILES)), default=firmware.DEFAULT,
                  show_default=True, help="The Meshtastic release whose behaviour the radio plays.")
    @click.option("--device", type=click.Choice(sorted(devices.DEVICES)), default="heltec-v3", show_default=True,
                  help="The radio's hardware (tbeam: an original ESP32, whose client queue holds 8 packets).")
    @click.option("--limit", type=click.IntRange(1), help="Stop the scenario after this many packets.")
    def simulate_cmd(pty_path, tcp_port, scenario, speed, corpus, replay_last, record, start_after, wait_for_host,
                     firmware, device, limit) -> None:
        """Run a virtual Meshtastic radio that the station (or the meshtastic CLI) can connect to."""
        if (pty_path is None) == (tcp_port is None):
            raise click.UsageError("give exactly one of --pty PATH or --tcp PORT")
        sim = SimRadio(scenario, speed=speed, pty=pty_path, tcp=tcp_port,
                       corpus_dir=Path(corpus) if corpus else None, replay_last=replay_last,
                       start_delay_s=start_after, wait_for_host=wait_for_host, firmware=firmware, device=device,
                       limit=limit)
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
