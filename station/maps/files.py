"""The maps folder beside the database: import checked MBTiles or PMTiles files (PMTiles become
MBTiles on the way in), list them, serve their tiles. Only files in that folder are ever
opened, by exact name."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from station.maps.formats import MBTiles, MapError, MapInfo, PMTiles

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def folder(database_path: Path) -> Path:
    return database_path.parent / "maps"


def _files(database_path: Path) -> dict[str, Path]:
    d = folder(database_path)
    if not d.is_dir():
        return {}
    return {p.stem: p for p in sorted(d.glob("*.mbtiles")) if NAME.match(p.stem)}


def available(database_path: Path) -> list[str]:
    return sorted(_files(database_path))


def describe(database_path: Path) -> list[tuple[str, MapInfo]]:
    """Each usable map with its zooms and bounds, broadest first, so a detailed town map drawn
    last sits on top of a country map. A map that no longer reads is left out, not fatal."""
    out = []
    for name, path in _files(database_path).items():
        try:
            out.append((name, MBTiles(path).info()))
        except (MapError, OSError):
            continue
    return sorted(out, key=lambda item: (item[1].maxzoom, item[0]))


def import_file(source: Path, database_path: Path, name: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> Path:
    """Check `source` and add it as NAME.mbtiles (replacing a map of that name); `progress` hears
    how far a PMTiles conversion has gone."""
    suffix = source.suffix.lower()
    if suffix not in (".mbtiles", ".pmtiles"):
        raise MapError("a map file is an .mbtiles or .pmtiles file")
    name = name or source.stem
    if not NAME.match(name):
        raise MapError("a map name is letters, digits, dots, dashes or underscores (at most 64)")
    dest = folder(database_path) / f"{name}.mbtiles"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    tmp.unlink(missing_ok=True)     # left by an import that was interrupted
    try:
        if suffix == ".pmtiles":
            PMTiles(source).convert(tmp, progress)
        else:
            MBTiles(source).info()  # refuses what the console could not serve, before copying
            shutil.copyfile(source, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.chmod(0o640)
    tmp.replace(dest)               # the console sees the old map or the new one, never half
    return dest


def tile(database_path: Path, name: str, z: int, x: int, y: int) -> tuple[bytes, str] | None:
    """One tile by XYZ coordinates with its media type, or None."""
    path = _files(database_path).get(name)
    if path is None:
        return None
    try:
        return MBTiles(path).tile(z, x, y)
    except sqlite3.Error:
        return None     # a file damaged after import shows as missing tiles, not a server error
