"""`station maps import FILE` and `station maps list`: offline maps for the console."""

from __future__ import annotations

import time
from pathlib import Path

import click

from station import maps
from station.cli.common import load_config


def register(cli: click.Group) -> None:
    @cli.group("maps")
    def grp() -> None:
        """Offline maps (MBTiles or PMTiles raster files) for the console."""

    @grp.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--name", help="Name of the map (default: the file's name).")
    @click.pass_context
    def import_cmd(ctx, file: str, name: str | None) -> None:
        """Check FILE (.mbtiles or .pmtiles) and copy it into the maps folder beside the database.

        Importing under a name already used replaces that map."""
        cfg = load_config(ctx)
        shown = [0.0]

        def progress(done: int, total: int) -> None:
            # A country-sized PMTiles file takes minutes: say how far it is, a few times a second.
            if time.monotonic() - shown[0] >= 0.5 or done == total:
                shown[0] = time.monotonic()
                click.echo(f"\rconverting: {done:,} of {total:,} tiles", nl=done == total, err=True)
        try:
            dest = maps.import_file(Path(file), cfg.database_path, name, progress)
        except maps.MapError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"map {dest.stem} imported ({dest})")

    @grp.command("list")
    @click.pass_context
    def list_cmd(ctx) -> None:
        """Maps the console can show."""
        names = maps.available(load_config(ctx).database_path)
        click.echo("\n".join(names) if names else "no maps imported: the console draws a grid around the station")
