"""The relay's part of the config file: `[[destinations]]`, `[[places]]` and their checks.

Credentials are never written in the config itself: `*_file` keys name files (mode 0600 or
stricter) that are read at start-up and kept out of logs, the database and `repr`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("x", "mastodon", "webhook", "drill")
AUDIENCES = ("public", "partners", "private")
PRECISIONS = ("exact", "1km", "10km", "city", "none")          # from most to least precise
NAME_MODES = ("real", "pseudonym", "none")                      # from most to least revealing
FALSE_ALARM = ("reply", "delete")

# What each kind needs, and the credential files it reads.
CREDENTIALS = {
    "x": ("consumer_key_file", "consumer_secret_file", "access_token_file", "access_token_secret_file"),
    "mastodon": ("access_token_file",),
    "webhook": ("secret_file",),
    "drill": (),
}
DEFAULT_BASE = {"x": "https://api.twitter.com", "mastodon": None}
# X charges per post, more for a post with a link (see MISSION.md); others are free.
DEFAULT_COST = {"x": (0.015, 0.20)}


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Secret:
    """A credential read from a file; its repr never shows it."""
    value: str = field(repr=False)

    def __str__(self) -> str:
        return "<secret>"


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str
    audience: str
    max_precision: str
    max_name: str
    enabled: bool = True
    daily_cap: int | None = None
    budget: float | None = None          # currency units a calendar month
    rate_per_hour: float | None = None
    cost_per_post: float = 0.0
    cost_per_link_post: float = 0.0
    api_base_url: str | None = None
    visibility: str = "public"
    url: str | None = None
    path: str | None = None
    false_alarm: str = "reply"
    timeout_s: float = 15.0
    secrets: dict[str, Secret] = field(default_factory=dict, repr=False)
    # Why it cannot be used now (a credential file missing or unreadable): its posts wait in the
    # outbox and everything else works; the operator reads this in status, doctor and the console.
    problem: str | None = None

    @property
    def public(self) -> bool:
        return self.audience == "public"


@dataclass(frozen=True)
class Place:
    name: str
    lat: float
    lon: float


def _need(d: dict, key: str, where: str, kinds: tuple[type, ...]) -> Any:
    if key not in d:
        raise SettingsError(f"{where} {key}: required")
    v = d[key]
    if isinstance(v, bool) and bool not in kinds or not isinstance(v, kinds):
        raise SettingsError(f"{where} {key}: expected {' or '.join(k.__name__ for k in kinds)}, found {v!r}")
    return v


def _choice(d: dict, key: str, where: str, choices: tuple[str, ...], default: str) -> str:
    v = d.get(key, default)
    if v not in choices:
        raise SettingsError(f"{where} {key}: expected one of {', '.join(choices)}, found {v!r}")
    return v


def _number(d: dict, key: str, where: str, default: float | None, *, integer: bool = False) -> Any:
    if key not in d:
        return default
    v = d[key]
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or v < 0:
        raise SettingsError(f"{where} {key}: expected a {'whole ' if integer else ''}number of 0 or more, found {v!r}")
    return v


def read_secret(path: Path, where: str) -> Secret:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SettingsError(f"{where}: credential file {path} does not exist") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(f"{where}: credential file {path} is readable by others "
                            f"(mode {stat.S_IMODE(st.st_mode):o}); chmod 600 {path}")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except PermissionError:
        raise SettingsError(f"{where}: credential file {path} is not readable by this user") from None
    if not value:
        raise SettingsError(f"{where}: credential file {path} is empty")
    return Secret(value)


KNOWN = {"name", "kind", "audience", "max_precision", "max_name", "enabled", "daily_cap", "budget",
         "rate_per_hour", "cost_per_post", "cost_per_link_post", "api_base_url", "visibility", "url",
         "path", "false_alarm", "timeout_s", *{k for ks in CREDENTIALS.values() for k in ks}}


def destination(raw: dict, index: int, base_dir: Path, *, read_secrets: bool = True) -> Destination:
    if not isinstance(raw, dict):
        raise SettingsError(f"[[destinations]] #{index + 1}: expected a table, found {raw!r}")
    where = f"[[destinations]] #{index + 1}"
    name = _need(raw, "name", where, (str,))
    where = f"[[destinations]] {name!r}"
    unknown = sorted(set(raw) - KNOWN)
    if unknown:
        raise SettingsError(f"{where} {unknown[0]}: unknown key")
    kind = _choice(raw, "kind", where, KINDS, "")
    audience = _choice(raw, "audience", where, AUDIENCES, "public")
    if kind == "drill" and audience == "public":
        raise SettingsError(f"{where} audience: a drill destination must not be public")
    # A public account shows at most the city by default: the safer ceiling unless the office decides.
    max_precision = _choice(raw, "max_precision", where, PRECISIONS, "city" if audience == "public" else "exact")
    max_name = _choice(raw, "max_name", where, NAME_MODES, "pseudonym" if audience == "public" else "real")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SettingsError(f"{where} enabled: expected true or false, found {enabled!r}")
    cost, link_cost = DEFAULT_COST.get(kind, (0.0, 0.0))
    secrets: dict[str, Secret] = {}
    problem = None
    for key in CREDENTIALS[kind]:
        path = _need(raw, key, where, (str,))
        p = Path(path) if os.path.isabs(path) else base_dir / path
        if read_secrets and problem is None:
            try:
                secrets[key] = read_secret(p, f"{where} {key}")
            except SettingsError as e:
                # One missing file must not stop the station: this destination waits, with why.
                problem = str(e)
    api = raw.get("api_base_url", DEFAULT_BASE.get(kind))
    if kind == "mastodon" and not api:
        raise SettingsError(f"{where} api_base_url: required for Mastodon (your instance, https://...)")
    if kind == "webhook" and not str(raw.get("url", "")).startswith(("https://", "http://")):
        raise SettingsError(f"{where} url: expected an http(s) URL, found {raw.get('url')!r}")
    if kind == "drill" and not raw.get("path"):
        raise SettingsError(f"{where} path: required for a drill destination (a JSON-lines file)")
    path = raw.get("path")
    if path and not os.path.isabs(path):
        path = str(base_dir / path)
    return Destination(
        name=name, kind=kind, audience=audience, max_precision=max_precision, max_name=max_name,
        enabled=enabled, daily_cap=_number(raw, "daily_cap", where, None, integer=True),
        budget=_number(raw, "budget", where, None), rate_per_hour=_number(raw, "rate_per_hour", where, None),
        cost_per_post=_number(raw, "cost_per_post", where, cost),
        cost_per_link_post=_number(raw, "cost_per_link_post", where, link_cost),
        api_base_url=api.rstrip("/") if api else None,
        visibility=_choice(raw, "visibility", where, ("public", "unlisted", "private", "direct"), "public"),
        url=raw.get("url"), path=path, false_alarm=_choice(raw, "false_alarm", where, FALSE_ALARM, "reply"),
        timeout_s=_number(raw, "timeout_s", where, 15.0) or 15.0, secrets=secrets, problem=problem,
    )


def destinations(raw: Any, base_dir: Path, *, read_secrets: bool = True) -> list[Destination]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SettingsError(f"[[destinations]]: expected an array of tables, found {raw!r}")
    out = [destination(r, i, base_dir, read_secrets=read_secrets) for i, r in enumerate(raw)]
    names = [d.name for d in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise SettingsError(f"[[destinations]] {dup!r}: the name is used twice")
    return out


def places(raw: Any) -> list[Place]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SettingsError(f"[[places]]: expected an array of tables, found {raw!r}")
    out = []
    for i, r in enumerate(raw):
        where = f"[[places]] #{i + 1}"
        name = _need(r, "name", where, (str,))
        lat = _need(r, "lat", where, (int, float))
        lon = _need(r, "lon", where, (int, float))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise SettingsError(f"{where} lat/lon: out of range")
        out.append(Place(name, float(lat), float(lon)))
    return out
