"""What a position's `precision_bits` means on the ground.

The firmware keeps the top N bits of each 32-bit coordinate (in 1e-7 degrees) and moves the
point to the middle of the cell (PositionPrecision.cpp truncateCoordinate). A 13-bit position,
the default channel's, is the centre of a cell 2^19 * 1e-7 = 0.052 degrees (about 5.8 km) wide:
the wearer is anywhere within about 2.9 km of it, in each direction.
"""

from __future__ import annotations

import math

M_PER_DEG = 111_320.0


def cell_deg(bits: int | None) -> float:
    """The cell's side in degrees; 0 for a full-precision position."""
    if bits is None or bits >= 32 or bits <= 0:
        return 0.0
    return (1 << (32 - bits)) * 1e-7


def uncertainty_m(bits: int | None) -> float | None:
    """Half the cell's side in metres (north-south), or None for a full-precision position."""
    deg = cell_deg(bits)
    return None if deg == 0 else deg / 2 * M_PER_DEG


def cell(lat: float, lon: float, bits: int | None) -> tuple[float, float, float, float] | None:
    """The cell the wearer is in: (south, west, north, east), or None for full precision."""
    deg = cell_deg(bits)
    if deg == 0:
        return None
    return lat - deg / 2, lon - deg / 2, lat + deg / 2, lon + deg / 2


def describe(bits: int | None) -> str:
    """"±2.9 km", "±370 m", or "" for full precision."""
    m = uncertainty_m(bits)
    if m is None:
        return ""
    if m >= 1000:
        return f"±{m / 1000:.1f} km"
    return f"±{math.ceil(m)} m" if m < 100 else f"±{int(math.ceil(m / 10) * 10)} m"


# The relay's published levels (station/relay/compose.py) and the finest fix each can honestly
# carry: "1km" snaps to 0.01 degrees, "10km" to 0.1 degrees.
LEVEL_DEG = {"exact": 0.0002, "1km": 0.01, "10km": 0.1}


def finest_level(bits: int | None) -> str:
    """The finest publication level a fix of this precision supports: "exact" for a full fix,
    else the first level whose grid is at least as coarse as the fix's cell, else "city"."""
    deg = cell_deg(bits)
    for level, step in LEVEL_DEG.items():
        if deg <= step:
            return level
    return "city"
