"""The two single-file formats offices get raster maps in.

MBTiles is an SQLite file whose rows count from the south (TMS); the console serves tiles from
it with one indexed lookup. PMTiles v3 is one file of gzip'd directories addressed along a
Hilbert curve. Its directories must be parsed before any tile can be found, and in Python a
root directory of 350,000 entries takes 0.45 s and ~70 MB of objects (measured by
bench/console.py), so a PMTiles file is converted to MBTiles once, at import, with protomaps'
own directory decoder; tiles the file stores once for many places (the sea) stay stored once.
"""

from __future__ import annotations

import gzip
import json
import mmap
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from pmtiles.reader import Reader
from pmtiles.tile import (Compression, Entry, MagicNumberNotFound, SpecVersionUnsupported, TileType,
                          deserialize_directory, tileid_to_zxy)

MIMETYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


class MapError(ValueError):
    pass


@dataclass(frozen=True)
class MapInfo:
    format: str                     # png, jpg or webp
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float] | None    # west, south, east, north

    @property
    def mimetype(self) -> str:
        return MIMETYPES[self.format]


def _raster(fmt: str, source: Path) -> str:
    if fmt not in MIMETYPES:
        raise MapError(f"{source} holds {fmt} tiles; the console shows png, jpg or webp raster tiles")
    return fmt


class MBTiles:
    def __init__(self, path: Path):
        self.path = path

    def _connect(self) -> closing[sqlite3.Connection]:
        # closing(): a connection's own `with` only ends a transaction, and this runs per tile.
        return closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True))

    def info(self) -> MapInfo:
        try:
            with self._connect() as c:
                meta = dict(c.execute("SELECT name, value FROM metadata").fetchall())
                if "minzoom" in meta and "maxzoom" in meta:
                    # Trusted only if a tile is really there; else counted (tiles may be a view).
                    zooms = c.execute("SELECT ?, ? FROM tiles LIMIT 1", (meta["minzoom"], meta["maxzoom"])).fetchone()
                else:
                    # Two subqueries: SQLite answers a lone MIN or MAX from the index, both together
                    # by a full scan (22 ms for 350,000 tiles, on every incident page).
                    zooms = c.execute("SELECT (SELECT MIN(zoom_level) FROM tiles), "
                                      "(SELECT MAX(zoom_level) FROM tiles)").fetchone()
        except sqlite3.Error as e:
            raise MapError(f"{self.path} is not an MBTiles file: {e}") from None
        if zooms is None or zooms[0] is None:
            raise MapError(f"{self.path} holds no tiles")
        bounds = None
        try:
            w, s, e, n = (float(v) for v in meta.get("bounds", "").split(","))
            bounds = (w, s, e, n)
        except ValueError:
            pass    # optional in the spec; Leaflet then asks everywhere
        try:
            minzoom, maxzoom = int(zooms[0]), int(zooms[1])
        except ValueError:
            raise MapError(f"{self.path} has unreadable minzoom/maxzoom metadata") from None
        return MapInfo(_raster(meta.get("format", "png"), self.path), minzoom, maxzoom, bounds)

    def tile(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        with self._connect() as c:
            fmt = c.execute("SELECT value FROM metadata WHERE name='format'").fetchone()
            row = c.execute("SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                            (z, x, (1 << z) - 1 - y)).fetchone()
        return None if row is None else (bytes(row[0]), MIMETYPES.get(fmt[0] if fmt else "png", "image/png"))


_PM_TYPES = {TileType.PNG: "png", TileType.JPEG: "jpg", TileType.WEBP: "webp"}


class PMTiles:
    def __init__(self, path: Path):
        self.path = path

    def _header(self, reader: Reader) -> dict:
        try:
            return reader.header()
        except (MagicNumberNotFound, UnicodeDecodeError):
            raise MapError(f"{self.path} is not a PMTiles file (version 3)") from None
        except SpecVersionUnsupported:
            raise MapError(f"{self.path} is an old PMTiles file (version 1 or 2): convert it to version 3 with "
                           "`pmtiles convert OLD.pmtiles NEW.pmtiles`") from None
        except (ValueError, IndexError) as e:      # an unknown enum value or a short file
            raise MapError(f"{self.path} has a damaged PMTiles header: {e}") from None

    def _open(self):
        f = self.path.open("rb")
        try:
            return f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:      # mmap of an empty file
            f.close()
            raise MapError(f"{self.path} is empty") from None

    def _check(self, reader: Reader, size: int) -> tuple[dict, MapInfo]:
        """The header and metadata, refused unless the console could draw the tiles."""
        h = self._header(reader)
        if h["internal_compression"] != Compression.GZIP:
            raise MapError(f"{self.path} compresses its directories with {h['internal_compression'].name}; "
                           "the console reads gzip ones (`pmtiles convert` writes those)")
        if h["tile_compression"] not in (Compression.NONE, Compression.GZIP, Compression.UNKNOWN):
            raise MapError(f"{self.path} compresses its tiles with {h['tile_compression'].name}; "
                           "the console reads uncompressed or gzip'd raster tiles")
        fmt = _PM_TYPES.get(h["tile_type"], h["tile_type"].name.lower())
        end = max(h[f"{part}_offset"] + h[f"{part}_length"]
                  for part in ("root", "metadata", "leaf_directory", "tile_data"))
        if end > size:
            raise MapError(f"{self.path} is cut short: its header describes {end} bytes, the file has "
                           f"{size} (an interrupted copy or download?)")
        try:
            reader.metadata()
        except (OSError, EOFError, zlib.error, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MapError(f"{self.path} is a damaged PMTiles file: {e}") from None
        bounds = tuple(h[k] / 1e7 for k in ("min_lon_e7", "min_lat_e7", "max_lon_e7", "max_lat_e7"))
        return h, MapInfo(_raster(fmt, self.path), h["min_zoom"], h["max_zoom"], bounds)

    def convert(self, dest: Path, progress: Callable[[int, int], None] | None = None) -> MapInfo:
        """Write the tiles to a new MBTiles file at `dest`, each distinct tile once. `progress`
        hears (tiles done, tiles in the file) after each directory entry's tiles."""
        f, m = self._open()
        # closing() shuts the file; the connection's own `with` makes the copy one transaction.
        with f, m, closing(sqlite3.connect(dest)) as out, out:
            reader = Reader(lambda offset, length: m[offset:offset + length])
            h, info = self._check(reader, len(m))
            out.executescript(MBTILES_SCHEMA)
            w, s_, e, n = info.bounds
            out.executemany("INSERT INTO metadata VALUES (?, ?)", [
                ("name", self.path.stem), ("format", info.format), ("minzoom", str(info.minzoom)),
                ("maxzoom", str(info.maxzoom)), ("bounds", f"{w},{s_},{e},{n}"), ("type", "baselayer"),
                ("description", f"converted from {self.path.name}")])
            done = 0
            try:
                for entry in self._tile_entries(reader, h, h["root_offset"], h["root_length"], 0):
                    data = reader.get_bytes(h["tile_data_offset"] + entry.offset, entry.length)
                    if len(data) != entry.length or entry.offset + entry.length > h["tile_data_length"]:
                        raise MapError(f"{self.path} is a damaged PMTiles file: a tile lies outside its tile data")
                    out.execute("INSERT OR IGNORE INTO images (tile_id, tile_data) VALUES (?, ?)",
                                (entry.offset, gzip.decompress(data) if h["tile_compression"] == Compression.GZIP
                                 else data))
                    rows = [(z, x, (1 << z) - 1 - y, entry.offset)
                            for z, x, y in map(tileid_to_zxy, range(entry.tile_id, entry.tile_id + entry.run_length))]
                    out.executemany("INSERT OR REPLACE INTO map VALUES (?, ?, ?, ?)", rows)
                    done += len(rows)
                    if progress:
                        progress(done, h["addressed_tiles_count"])
            except (OSError, EOFError, zlib.error, IndexError) as err:
                raise MapError(f"{self.path} is a damaged PMTiles file: {err}") from None
        return info

    def _tile_entries(self, reader: Reader, h: dict, offset: int, length: int, depth: int) -> Iterator[Entry]:
        """Every directory entry that points at tiles, leaf directories followed."""
        if depth > 3:       # the spec allows a root and leaves; a loop would never end
            raise MapError(f"{self.path} has directories nested too deep")
        for entry in deserialize_directory(reader.get_bytes(offset, length)):
            if entry.run_length:
                yield entry
            else:
                yield from self._tile_entries(reader, h, h["leaf_directory_offset"] + entry.offset, entry.length,
                                              depth + 1)


# The MBTiles layout for shared tiles: `tiles` is a view, as the spec allows.
MBTILES_SCHEMA = """
CREATE TABLE metadata (name TEXT, value TEXT);
CREATE TABLE images (tile_id INTEGER PRIMARY KEY, tile_data BLOB);
CREATE TABLE map (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_id INTEGER);
CREATE UNIQUE INDEX map_index ON map (zoom_level, tile_column, tile_row);
CREATE VIEW tiles AS SELECT map.zoom_level, map.tile_column, map.tile_row, images.tile_data
    FROM map JOIN images ON images.tile_id = map.tile_id;
"""
