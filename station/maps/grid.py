"""The plain grid drawn when the office has no map: positions around the station with distance
rings, bearings and a north arrow, so the console never shows a blank box."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape


def distance_bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> tuple[float, float]:
    """Metres and degrees from the first point to the second."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    metres = 6_371_000 * 2 * math.asin(math.sqrt(h))
    bearing = math.degrees(math.atan2(math.sin(dl) * math.cos(p2),
                                      math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)))
    return metres, bearing % 360


def _fmt(m: float) -> str:
    return f"{m / 1000:.1f} km" if m >= 1000 else f"{m:.0f} m"


# Colours of the overview's marks: alerts in red, a duress in black on red, bracelets in blue.
COLOURS = {"alert": "#b00020", "duress": "#5a0010", "bracelet": "#1a5fb4", "station": "#26a269"}


def grid_svg(origin: tuple[float, float], origin_label: str, points: list[tuple], size: int = 420,
             caption: str | None = None, *, track: bool = True) -> str:
    """An SVG of `points` (lat, lon, label) around `origin`, with distance rings and a north arrow.
    `caption` is what a screen reader says (the console passes it in the reader's language).
    A track joins the points and names the last one; otherwise (the overview) every point is a
    mark of its own, named, its colour from an optional fourth item (COLOURS)."""
    quoted = escape(caption or f"positions relative to {origin_label}", {'"': "&quot;"})
    polar = [(*distance_bearing(origin[0], origin[1], p[0], p[1]), p[2]) for p in points]
    colours = [COLOURS.get(p[3], COLOURS["alert"]) if len(p) > 3 else COLOURS["alert"] for p in points]
    far = max([d for d, _, _ in polar] + [50.0])
    ring = 10 ** math.floor(math.log10(far))
    ring = next(r for r in (ring, 2 * ring, 5 * ring, 10 * ring) if r * 4 >= far)
    scale = (size / 2 - 30) / (ring * 4)
    c = size / 2
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="grid" viewBox="0 0 {size} {size}" width="{size}" '
           f'height="{size}" role="img" aria-label="{quoted}">',
           f'<rect width="{size}" height="{size}" fill="#fff" stroke="#999"/>']
    for k in range(1, 5):
        r = ring * k * scale
        out.append(f'<circle cx="{c}" cy="{c}" r="{r:.1f}" fill="none" stroke="#ccc"/>'
                   f'<text x="{c + 3}" y="{c - r - 2:.1f}" font-size="11" fill="#666">{_fmt(ring * k)}</text>')
    out.append(f'<text x="{c}" y="14" text-anchor="middle" font-size="12">N ↑</text>')
    out.append(f'<circle cx="{c}" cy="{c}" r="5" fill="#111"/><text x="{c + 8}" y="{c + 14}" font-size="11">'
               f'{escape(origin_label)}</text>')
    previous = None
    for i, (d, b, label) in enumerate(polar):
        x = c + d * scale * math.sin(math.radians(b))
        y = c - d * scale * math.cos(math.radians(b))
        if previous and track:
            out.append(f'<line x1="{previous[0]:.1f}" y1="{previous[1]:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#b00020"/>')
        last = i == len(polar) - 1 or not track
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{6 if last else 3}" fill="{colours[i]}"/>')
        if last:
            # Written towards the centre, so it never runs off the edge.
            anchor, tx = ("end", x - 8) if x > c else ("start", x + 8)
            out.append(f'<text x="{tx:.1f}" y="{y - 8:.1f}" text-anchor="{anchor}" font-size="12" '
                       f'font-weight="bold" paint-order="stroke" stroke="#fff" stroke-width="4">'
                       f'{escape(label)}: {_fmt(d)}, {b:.0f}°</text>')
        previous = (x, y)
    out.append("</svg>")
    return "".join(out)
