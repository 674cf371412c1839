"""`station radio flash FILE`: Meshtastic firmware from a file the technician brought, onto the
station's radio (lent by the daemon while it runs) or a radio on another port (--port)."""

from __future__ import annotations

import contextlib
import getpass
import sys
from pathlib import Path

import click

from station.cli.common import load_config
from station.cli.radio_admin import port_lent, record_event
from station.radio.flash import esp, files, flow
from station.radio.ports import resolve_port
from station.radio.session import bench_session, radio_session
from station.wording import Wording

LEND_S = 900.0      # the daemon's longest loan: a 4 MB image at 115200 baud takes about 6 minutes


def register_flash(grp: click.Group) -> None:
    @grp.command("flash", short_help="Install Meshtastic firmware from a release file, checked against the board.")
    @click.argument("file", type=click.Path(dir_okay=False, exists=True))
    @click.option("--port", help="The radio's serial port (default: the station's radio).")
    @click.option("--drive", type=click.Path(file_okay=False),
                  help="Where the UF2 bootloader drive is mounted, or the folder it is mounted under "
                       "(nRF52 boards; default: /media, /run/media, /mnt).")
    @click.option("--no-keep-config", is_flag=True,
                  help="Do not read and put back the radio's configuration: for a radio that no longer answers.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @click.option("--by", default=None, help="Who flashes, for the event log (default: your login).")
    @click.pass_context
    def flash_cmd(ctx: click.Context, file: str, port: str | None, drive: str | None, no_keep_config: bool,
                  yes: bool, by: str | None) -> None:
        """Write Meshtastic firmware FILE (firmware-<board>-<version>.bin, .factory.bin or .uf2 from
        the release zip) to a radio: checked against the board first, configuration and key kept."""
        by = by or getpass.getuser()
        cfg = load_config(ctx)
        try:
            f = files.read(Path(file))
        except files.FlashRefused as e:
            raise click.ClickException(f"refused: {e}") from None
        station_port = resolve_port(cfg.radio["port"])
        port = port or station_port
        if port == "sim":
            raise click.ClickException("no radio is plugged in: plug it in, or name its port with --port")
        ours = port == station_port
        click.echo(f"{f.describe()} onto {'the station radio' if ours else 'the radio'} at {port}")
        if no_keep_config:
            click.echo("its configuration and key will NOT be read first: if the flash erases them they are lost")
            if f.kind == "uf2":
                # A UF2 file names no board, only a chip family: the radio's own answer was the check.
                click.echo(f"and the radio cannot say what board it is: make sure it is a {f.board.env}")
        if not yes and not click.confirm("flash it?"):
            click.echo("nothing was written")
            return
        patterns = (drive, str(Path(drive) / "*")) if drive else flow.uf2.DRIVE_PATTERNS
        session = (lambda: radio_session(cfg)) if ours else (lambda: bench_session(port, cfg))
        with click.progressbar(length=len(f.data), label="writing", file=sys.stderr) as bar:
            def progress(done: int, total: int) -> None:
                bar.update(max(0, done * len(f.data) // max(total, 1) - bar.pos))
            try:
                with port_lent(ctx, by, LEND_S) if ours else contextlib.nullcontext():
                    report = flow.flash(f, port, session, keep_config=not no_keep_config,
                                        drive_patterns=patterns, say=click.echo, progress=progress)
            except files.FlashRefused as e:
                raise click.ClickException(f"refused: {e}") from None
            except esp.FlashFailed as e:
                record_event(ctx, by, "radio flash failed",
                             Wording("{file} on {port}: {error}", file=f.path.name, port=port, error=str(e)))
                raise click.ClickException(str(e)) from None
        before = report.before.firmware if report.before else "unknown"
        restored = Wording("; configuration put back") if report.restored else ""
        record_event(ctx, by, "radio flashed", Wording("{node} {before} -> {after} from {file} ({how}){restored}",
                                                       node=report.after.node, before=before,
                                                       after=report.after.firmware, file=f.path.name, how=report.how,
                                                       restored=restored))
        for note in report.notes:
            click.echo(f"note: {note}")
        click.echo(f"done: radio {report.after.node} runs {report.after.firmware}"
                   + (", its configuration and key put back and verified" if report.restored else
                      ", configuration and key unchanged" if report.before else ""))
