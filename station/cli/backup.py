"""`station backup [DEST]`, `station backup-keygen FILE` and `station restore FILE`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from station import queries, registry
from station.nodeids import node_id
from station.pins import PinKey, configured_key_path
from station.cli.common import load_config, open_db
from station.storage import age
from station.storage import backup as bk


def register(cli: click.Group) -> None:
    @cli.command("backup")
    @click.argument("dest", required=False, type=click.Path(file_okay=False))
    @click.option("--keep", type=click.IntRange(1, 1000), help="Backups to keep (default: [backup] keep).")
    @click.pass_context
    def backup_cmd(ctx, dest: str | None, keep: int | None) -> None:
        """Copy the database, online, verified and encrypted to [backup] recipients, into DEST
        (default: [backup] dir)."""
        cfg = load_config(ctx)
        recipients = cfg.backup["recipients"]
        try:
            made = bk.configured(cfg, dest, keep)
        except bk.BackupError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"backup written and verified: {made}" +
                   (f" (encrypted to {len(recipients)} key{'s' if len(recipients) > 1 else ''})" if recipients
                    else " (NOT encrypted: [backup] plaintext = true)"))

    @cli.command("backup-keygen")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--on-station", is_flag=True, help="Write it beside the database anyway (a test bench only).")
    @click.pass_context
    def keygen_cmd(ctx, file: str, on_station: bool) -> None:
        """Make the key that opens backups, in FILE, for the office to keep off the station."""
        cfg = load_config(ctx)
        out = Path(file)
        parent = out.resolve().parent
        if parent.exists() and cfg.database_path.parent.exists() and not on_station and \
                os.stat(parent).st_dev == os.stat(cfg.database_path.parent).st_dev:
            raise click.ClickException(
                f"{out} is on the same disk as the database: whoever seizes the station would have the key "
                "to its backups. Write it to a medium that leaves the station (a USB stick kept elsewhere)")
        try:
            recipient = age.keygen(out)
        except age.AgeError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"key written to {out}: keep it off the station; station restore needs it.\n"
                   f"add to the config:\n\n[backup]\nrecipients = [\"{recipient}\"]")

    @cli.command("restore")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--identity", type=click.Path(dir_okay=False, exists=True),
                  help="The key made by station backup-keygen (for an encrypted backup).")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @click.pass_context
    def restore_cmd(ctx, file: str, identity: str | None, yes: bool) -> None:
        """Replace the database with a backup (the daemon must be stopped first)."""
        cfg = load_config(ctx)
        if cfg.database_path.exists() and queries.status(open_db(ctx))["daemon_running"]:
            raise click.ClickException("the station daemon is running: stop it first (sudo systemctl stop station)")
        if not yes:
            click.confirm(f"Replace {cfg.database_path} with {file}?", abort=True)
        try:
            kept = bk.restore(Path(file), cfg.database_path, Path(identity) if identity else None)
        except bk.BackupError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"restored {file}" + (f"; the previous database is kept at {kept}" if kept else ""))
        stranded = _pins_this_station_cannot_check(cfg, ctx)
        if stranded:
            click.echo(f"warning: the PINs of {len(stranded)} bracelets were set on a station with another PIN key "
                       f"({', '.join(node_id(n) for n in stranded)}): copy that station's pin.key to "
                       f"{configured_key_path(cfg)}, or set them again (station bracelets pins NODE)", err=True)


def _pins_this_station_cannot_check(cfg, ctx) -> list[int]:
    try:
        key = PinKey.load(configured_key_path(cfg), create=False)
    except FileNotFoundError:
        key = PinKey(b"")            # no key yet: every keyed PIN is someone else's
    return registry.pins_under_other_keys(open_db(ctx), key)
