"""Reading raster tiles out of the two single-file formats offices get maps in.

MBTiles is an SQLite file whose rows count from the south (TMS); PMTiles v3 is one file of
gzip'd directories addressed along a Hilbert curve, read here with protomaps' own `pmtiles`
reader over an mmap so a tile costs a few page reads, not a file load.
"""

from __future__ import annotations

import gzip
import json
import mmap
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path

from pmtiles.reader import Reader
from pmtiles.tile import Compression, MagicNumberNotFound, SpecVersionUnsupported, TileType

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
    suffix = ".mbtiles"

    def __init__(self, path: Path):
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def info(self) -> MapInfo:
        try:
            with self._connect() as c:
                meta = dict(c.execute("SELECT name, value FROM metadata").fetchall())
                zooms = c.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        except sqlite3.Error as e:
            raise MapError(f"{self.path} is not an MBTiles file: {e}") from None
        if zooms[0] is None:
            raise MapError(f"{self.path} holds no tiles")
        bounds = None
        try:
            w, s, e, n = (float(v) for v in meta.get("bounds", "").split(","))
            bounds = (w, s, e, n)
        except ValueError:
            pass    # optional in the spec; Leaflet then asks everywhere
        return MapInfo(_raster(meta.get("format", "png"), self.path), int(zooms[0]), int(zooms[1]), bounds)

    def tile(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        with self._connect() as c:
            fmt = c.execute("SELECT value FROM metadata WHERE name='format'").fetchone()
            row = c.execute("SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                            (z, x, (1 << z) - 1 - y)).fetchone()
        return None if row is None else (bytes(row[0]), MIMETYPES.get(fmt[0] if fmt else "png", "image/png"))


_PM_TYPES = {TileType.PNG: "png", TileType.JPEG: "jpg", TileType.WEBP: "webp"}


class PMTiles:
    suffix = ".pmtiles"

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

    def info(self) -> MapInfo:
        f, m = self._open()
        with f, m:
            reader = Reader(lambda offset, length: m[offset:offset + length])
            h = self._header(reader)
            if h["internal_compression"] != Compression.GZIP:
                raise MapError(f"{self.path} compresses its directories with {h['internal_compression'].name}; "
                               "the console reads gzip ones (`pmtiles convert` writes those)")
            if h["tile_compression"] not in (Compression.NONE, Compression.GZIP, Compression.UNKNOWN):
                raise MapError(f"{self.path} compresses its tiles with {h['tile_compression'].name}; "
                               "the console reads uncompressed or gzip'd raster tiles")
            fmt = _PM_TYPES.get(h["tile_type"], h["tile_type"].name.lower())
            try:    # the root directory and the metadata must both read, or tiles never will
                reader.get(h["min_zoom"], 0, 0)
                reader.metadata()
            except (OSError, EOFError, zlib.error, json.JSONDecodeError, UnicodeDecodeError, IndexError) as e:
                raise MapError(f"{self.path} is a damaged PMTiles file: {e}") from None
            bounds = tuple(h[k] / 1e7 for k in ("min_lon_e7", "min_lat_e7", "max_lon_e7", "max_lat_e7"))
            return MapInfo(_raster(fmt, self.path), h["min_zoom"], h["max_zoom"], bounds)

    def tile(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        f, m = self._open()
        with f, m:
            reader = Reader(lambda offset, length: m[offset:offset + length])
            h = self._header(reader)
            data = reader.get(z, x, y)
            if data is None:
                return None
            if h["tile_compression"] == Compression.GZIP:
                data = gzip.decompress(data)
            return data, MIMETYPES.get(_PM_TYPES.get(h["tile_type"], ""), "image/png")


FORMATS = {cls.suffix: cls for cls in (MBTiles, PMTiles)}
