"""Offline maps: the office's MBTiles and PMTiles files, and a plain grid when there are none."""

from station.maps.files import available, describe, folder, import_file, tile
from station.maps.formats import MapError, MapInfo
from station.maps.grid import COLOURS, distance_bearing, grid_svg

__all__ = ["COLOURS", "MapError", "MapInfo", "available", "describe", "distance_bearing", "folder", "grid_svg",
           "import_file", "tile"]
