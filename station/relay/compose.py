"""What a post may say: the wearer's consent, the destination's ceiling, the stricter of the two,
rendered through office-editable templates in a Jinja2 sandbox.

A template sees only what consent allows: the incident reference, the time, the place at the
allowed precision, a map link if allowed, and the allowed name. Node ids, hardware, battery
and raw coordinates are never in its context, so no template can leak them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from station.decode import precision as fix_precision
from station.relay.settings import NAME_MODES, PRECISIONS, Destination, Place

BUILTIN_TEMPLATES = Path(__file__).with_name("templates")
# Grid steps in degrees: about 1.1 km and 11 km at the equator, less in longitude further north.
STEP = {"1km": 0.01, "10km": 0.1}
ZOOM = {"exact": 16, "1km": 13, "10km": 10}
URL_WEIGHT = 23       # X and Mastodon count any link as 23 characters
LIMITS = {"x": 280, "mastodon": 500}


class ComposeError(ValueError):
    pass


@dataclass(frozen=True)
class Consent:
    publish: str = "never"                 # never, verified, at-once
    name_mode: str = "none"
    pseudonym: str | None = None
    real_name: str | None = None
    precision: str = "none"
    map_link: bool = False
    languages: tuple[str, ...] = ("en",)
    approvals: int = 1
    publish_after_min: float | None = None
    position_updates: bool = False

    @classmethod
    def from_row(cls, row: dict) -> "Consent":
        try:
            langs = tuple(json.loads(row["languages"] or '["en"]')) or ("en",)
        except (ValueError, TypeError):
            langs = ("en",)
        return cls(row["publish"], row["name_mode"], row["pseudonym"], row["real_name"], row["precision"],
                   bool(row["map_link"]), langs, row["approvals"] or 1, row["publish_after_min"],
                   bool(row["position_updates"]))


NO_CONSENT = Consent()


def stricter_precision(a: str, b: str) -> str:
    return PRECISIONS[max(PRECISIONS.index(a), PRECISIONS.index(b))]


def stricter_name(a: str, b: str) -> str:
    return NAME_MODES[max(NAME_MODES.index(a), NAME_MODES.index(b))]


@dataclass(frozen=True)
class Location:
    text: str
    map_lat: float | None = None
    map_lon: float | None = None
    zoom: int | None = None


def _snap(v: float, step: float) -> float:
    # The nearest grid point: the published point says only that the fix lies within half a
    # step of it, and prints exactly at the step's decimals.
    return round(round(v / step) * step, 6)


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(h))


def locate(lat: float | None, lon: float | None, precision: str, places: list[Place],
           radius_km: float) -> Location | None:
    if lat is None or lon is None or precision == "none":
        return None
    if precision == "exact":
        la, lo = round(lat, 5), round(lon, 5)
        return Location(f"{la:.5f}, {lo:.5f}", la, lo, ZOOM["exact"])
    if precision in STEP:
        step = STEP[precision]
        la, lo = _snap(lat, step), _snap(lon, step)
        digits = 2 if precision == "1km" else 1
        return Location(f"{la:.{digits}f}, {lo:.{digits}f} (within about {precision[:-2]} km)", la, lo,
                        ZOOM[precision])
    near = min(places, key=lambda p: _km(lat, lon, p.lat, p.lon), default=None)
    if near is None or _km(lat, lon, near.lat, near.lon) > radius_km:
        return None
    return Location(near.name)


def display_name(consent: Consent, mode: str) -> str | None:
    if mode == "real" and consent.real_name:
        return consent.real_name
    if mode in ("real", "pseudonym") and consent.pseudonym:
        return consent.pseudonym   # "real" with no real name on record falls back to the pseudonym
    return None


def weighted_length(text: str) -> int:
    """X's counting: a link counts 23; most scripts 1 a character, others (CJK, emoji) 2."""
    total = 0
    for part in re.split(r"(https?://\S+)", text):
        if part.startswith(("http://", "https://")):
            total += URL_WEIGHT
            continue
        for ch in part:
            cp = ord(ch)
            light = cp <= 0x10FF or 0x2000 <= cp <= 0x200D or 0x2010 <= cp <= 0x201F or 0x2032 <= cp <= 0x2037
            total += 1 if light else 2
    return total


class Templates:
    def __init__(self, custom_dir: str | Path | None = None):
        dirs = [str(custom_dir)] if custom_dir else []
        self.env = SandboxedEnvironment(loader=jinja2.FileSystemLoader(dirs + [str(BUILTIN_TEMPLATES)]),
                                        undefined=jinja2.StrictUndefined, autoescape=False,
                                        trim_blocks=True, lstrip_blocks=True)

    def render(self, name: str, lang: str, context: dict) -> str:
        try:
            tpl = self.env.get_template(f"{name}.{lang}.j2")
        except jinja2.TemplateNotFound:
            tpl = self.env.get_template(f"{name}.en.j2")
        try:
            return tpl.render(**context).strip()
        except jinja2.TemplateError as e:
            raise ComposeError(f"template {name}.{lang}: {e}") from None


@dataclass(frozen=True)
class Post:
    text: str
    has_link: bool


def compose(template: str, incident: dict, consent: Consent, dest: Destination, *, templates: Templates,
            time_zone: str, places: list[Place], radius_km: float) -> Post:
    # Never more precise than the fix itself: a 13-bit position (the public channel's) is the
    # centre of a cell about 5.8 km wide, and "exact" must not pretend otherwise.
    precision = stricter_precision(stricter_precision(consent.precision, dest.max_precision),
                                   fix_precision.finest_level(incident.get("fix_precision_bits")))
    name_mode = stricter_name(consent.name_mode, dest.max_name)
    where = locate(incident.get("lat"), incident.get("lon"), precision, places, radius_km)
    map_url = None
    if consent.map_link and where is not None and where.map_lat is not None:
        map_url = (f"https://www.openstreetmap.org/?mlat={where.map_lat}&mlon={where.map_lon}"
                   f"#map={where.zoom}/{where.map_lat}/{where.map_lon}")
    opened = dt.datetime.fromtimestamp(incident["opened_at"], zoneinfo.ZoneInfo(time_zone))
    context = {
        "ref": f"#{incident['id']}",
        "time": opened.strftime("%Y-%m-%d %H:%M %Z"),
        "place": where.text if where else None,
        "map_url": map_url,
        "who": display_name(consent, name_mode),
        "drill": bool(incident.get("drill")),
    }
    limit = LIMITS.get(dest.kind)
    texts = [templates.render(template, lang, context) for lang in consent.languages]
    # All the wearer's languages in one post if they fit; else as many as fit, in order.
    while texts:
        text = "\n\n".join(texts)
        if limit is None or weighted_length(text) <= limit:
            return Post(text, map_url is not None)
        texts.pop()
    raise ComposeError(f"the post is longer than {dest.kind}'s limit of {limit} even in one language")
