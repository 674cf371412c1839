"""Real tile files for the map tests: PNG tiles a browser can decode, in MBTiles (the SQLite
layout, rows from the south) and PMTiles v3 (written by protomaps' own writer)."""

from __future__ import annotations

import gzip
import sqlite3
import struct
import zlib

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write


def png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A solid-colour RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + bytes(rgb) * size
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b""))


def pyramid(maxzoom: int, rgb=(200, 220, 255)) -> dict[tuple[int, int, int], bytes]:
    """Every tile down to `maxzoom`, each a slightly different colour, so no two XYZ tiles match."""
    return {(z, x, y): png((rgb[0], (rgb[1] + x * 7) % 256, (rgb[2] + y * 13 + z) % 256))
            for z in range(maxzoom + 1) for x in range(1 << z) for y in range(1 << z)}


def make_mbtiles(path, tiles: dict, fmt: str = "png", bounds: str | None = None):
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE metadata (name text, value text)")
        c.execute("CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, tile_data blob)")
        c.execute("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)")
        c.execute("INSERT INTO metadata VALUES ('format', ?)", (fmt,))
        if bounds:
            c.execute("INSERT INTO metadata VALUES ('bounds', ?)", (bounds,))
        c.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                      [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()])
    return path


def make_pmtiles(path, tiles: dict, tile_type=TileType.PNG, compression=Compression.NONE,
                 bounds=(-180.0, -85.0, 180.0, 85.0)):
    with write(str(path)) as w:
        for tileid, data in sorted((zxy_to_tileid(*k), v) for k, v in tiles.items()):
            w.write_tile(tileid, gzip.compress(data, mtime=0) if compression == Compression.GZIP else data)
        w.finalize({"tile_type": tile_type, "tile_compression": compression,
                    "min_lon_e7": int(bounds[0] * 1e7), "min_lat_e7": int(bounds[1] * 1e7),
                    "max_lon_e7": int(bounds[2] * 1e7), "max_lat_e7": int(bounds[3] * 1e7)},
                   {"name": "test map"})
    return path
