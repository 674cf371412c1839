"""`station backup [DEST]` and `station restore FILE`."""

from __future__ import annotations

from pathlib import Path

import click

from station import queries
from station.cli.common import load_config, open_db
from station.storage import backup as bk


def register(cli: click.Group) -> None:
    @cli.command("backup")
    @click.argument("dest", required=False, type=click.Path(file_okay=False))
    @click.option("--keep", type=click.IntRange(1, 1000), help="Backups to keep (default: [backup] keep).")
    @click.pass_context
    def backup_cmd(ctx, dest: str | None, keep: int | None) -> None:
        """Copy the database, online and verified, into DEST (default: [backup] dir)."""
        cfg = load_config(ctx)
        folder = dest or cfg.backup["dir"]
        if not folder:
            raise click.ClickException("no backup folder: give DEST or set [backup] dir in the config")
        try:
            made = bk.backup(cfg.database_path, Path(folder), keep or cfg.backup["keep"])
        except bk.BackupError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"backup written and verified: {made}")

    @cli.command("restore")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @click.pass_context
    def restore_cmd(ctx, file: str, yes: bool) -> None:
        """Replace the database with a backup (the daemon must be stopped first)."""
        cfg = load_config(ctx)
        if cfg.database_path.exists() and queries.status(open_db(ctx))["daemon_running"]:
            raise click.ClickException("the station daemon is running: stop it first (sudo systemctl stop station)")
        if not yes:
            click.confirm(f"Replace {cfg.database_path} with {file}?", abort=True)
        try:
            kept = bk.restore(Path(file), cfg.database_path)
        except bk.BackupError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"restored {file}" + (f"; the previous database is kept at {kept}" if kept else ""))
