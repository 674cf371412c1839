"""The maps folder beside the database: import checked MBTiles or PMTiles files, list them,
serve their tiles. Only files in that folder are ever opened, by exact name."""

from __future__ import annotations

import re
import shutil
import sqlite3
import zlib
from pathlib import Path

from station.maps.formats import FORMATS, MapError, MapInfo

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def folder(database_path: Path) -> Path:
    return database_path.parent / "maps"


def _files(database_path: Path) -> dict[str, Path]:
    d = folder(database_path)
    if not d.is_dir():
        return {}
    return {p.stem: p for p in sorted(d.iterdir()) if p.suffix in FORMATS and NAME.match(p.stem)}


def available(database_path: Path) -> list[str]:
    return sorted(_files(database_path))


def describe(database_path: Path) -> list[tuple[str, MapInfo]]:
    """Each usable map with its zooms and bounds, broadest first, so a detailed town map drawn
    last sits on top of a country map. A map that no longer reads is left out, not fatal."""
    out = []
    for name, path in _files(database_path).items():
        try:
            out.append((name, FORMATS[path.suffix](path).info()))
        except (MapError, OSError):
            continue
    return sorted(out, key=lambda item: (item[1].maxzoom, item[0]))


def import_file(source: Path, database_path: Path, name: str | None = None) -> Path:
    kind = FORMATS.get(source.suffix.lower())
    if kind is None:
        raise MapError("a map file is an .mbtiles or .pmtiles file")
    name = name or source.stem
    if not NAME.match(name):
        raise MapError("a map name is letters, digits, dots, dashes or underscores (at most 64)")
    kind(source).info()     # refuses what the console could not serve, before anything is copied
    dest = folder(database_path) / f"{name}{kind.suffix}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    shutil.copyfile(source, tmp)
    tmp.chmod(0o640)
    tmp.replace(dest)
    for other in FORMATS:   # a name means one map: re-importing it in the other format replaces it
        if other != kind.suffix:
            dest.with_suffix(other).unlink(missing_ok=True)
    return dest


def tile(database_path: Path, name: str, z: int, x: int, y: int) -> tuple[bytes, str] | None:
    """One tile by XYZ coordinates with its media type, or None."""
    path = _files(database_path).get(name)
    if path is None:
        return None
    try:
        return FORMATS[path.suffix](path).tile(z, x, y)
    except (MapError, OSError, sqlite3.Error, zlib.error, EOFError, IndexError):
        return None     # a file damaged after import shows as missing tiles, not a server error
