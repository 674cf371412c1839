"""The escalation policy from the config file: `[escalation]`, `[[responders]]` and
`[[escalation_steps]]` (see station.example.toml). Checked when the config is loaded, so a typo
in a phone number or a weekday stops start-up with the key named, not at 3 a.m. when step 2 fires.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time as dtime

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CHANNELS = ("mesh", "sms", "email", "ntfy", "telegram")
WHO = ("on_call", "all")


class PolicyError(ValueError):
    """The message names the list entry and key, for the operator."""


@dataclass(frozen=True)
class Hours:
    """One weekly on-call span: days (0 = Monday) and a time range, which may run past midnight
    (`daily 20:00-08:00` covers the night into the next morning)."""
    days: frozenset[int]
    start: dtime
    end: dtime

    def covers(self, local: datetime) -> bool:
        t, day = local.time(), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        # Past midnight: the evening of a listed day, or the morning after one.
        return (day in self.days and t >= self.start) or ((day - 1) % 7 in self.days and t < self.end)


def parse_hours(text: str) -> Hours:
    """`mon-fri 08:00-18:00`, `sat,sun 10:00-14:00`, `daily 20:00-08:00`."""
    m = re.fullmatch(r"\s*([a-z,\-]+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text.lower())
    if not m:
        raise PolicyError(f'expected hours such as "mon-fri 08:00-18:00" or "daily 20:00-08:00", found {text!r}')
    days: set[int] = set()
    for part in m.group(1).split(","):
        if part == "daily":
            days.update(range(7))
        elif "-" in part:
            a, _, b = part.partition("-")
            if a not in DAYS or b not in DAYS:
                raise PolicyError(f"unknown day in {text!r}; days are {', '.join(DAYS)} or daily")
            i, j = DAYS.index(a), DAYS.index(b)
            days.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif part in DAYS:
            days.add(DAYS.index(part))
        else:
            raise PolicyError(f"unknown day {part!r} in {text!r}; days are {', '.join(DAYS)} or daily")
    h1, m1, h2, m2 = (int(g) for g in m.groups()[1:])
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        raise PolicyError(f"impossible or empty time range in {text!r}")
    as_time = lambda h, mi: dtime.max if h == 24 else dtime(h, mi)     # noqa: E731
    return Hours(frozenset(days), as_time(h1, m1), as_time(h2, m2))


@dataclass(frozen=True)
class Responder:
    name: str
    node: int | None = None            # her own Meshtastic node, reached by PKI DM
    public_key: str | None = None      # that node's key, pinned (never taken from the air)
    phone: str | None = None           # E.164
    email: str | None = None
    ntfy_topic: str | None = None
    telegram_chat: str | None = None
    on_call: tuple[Hours, ...] = ()    # none: always
    contact_for: frozenset[int] = frozenset()   # bracelets whose trusted contact she is

    def address(self, channel: str) -> str | None:
        return {"mesh": f"!{self.node:08x}" if self.node is not None else None, "sms": self.phone,
                "email": self.email, "ntfy": self.ntfy_topic, "telegram": self.telegram_chat}[channel]

    def on_call_at(self, local: datetime) -> bool:
        return not self.on_call or any(h.covers(local) for h in self.on_call)


@dataclass(frozen=True)
class Step:
    after_s: float          # after the previous step (the first: after the alert opened)
    who: tuple[str, ...]    # ("on_call",), ("all",) or responders' names
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    enabled: bool = False
    time_zone: str = "UTC"
    responders: tuple[Responder, ...] = ()
    steps: tuple[Step, ...] = ()
    ack_word: str = "ACK"

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.steps) and bool(self.responders)

    def responder(self, name: str) -> Responder | None:
        return next((r for r in self.responders if r.name == name), None)

    def by_node(self, num: int) -> Responder | None:
        return next((r for r in self.responders if r.node == num), None)

    def by_phone(self, phone: str) -> Responder | None:
        want = _digits(phone)
        return next((r for r in self.responders if r.phone and _digits(r.phone) == want), None)

    def who_at(self, step: Step, at: float) -> list[Responder]:
        """The responders a step reaches at `at` (seconds since the epoch), in the config's order.
        Nobody on call is not nobody: the step then reaches everyone, since an alert must reach someone."""
        local = datetime.fromtimestamp(at, zoneinfo.ZoneInfo(self.time_zone))
        if step.who == ("all",):
            return list(self.responders)
        if step.who == ("on_call",):
            on = [r for r in self.responders if r.on_call_at(local)]
            return on or list(self.responders)
        return [r for r in self.responders if r.name in step.who]

    def contacts_of(self, num: int) -> list[Responder]:
        return [r for r in self.responders if num in r.contact_for]


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-9:]      # the national part: a modem may drop the +country


def _node(value, where: str) -> int:
    from station.nodeids import parse_node
    try:
        return parse_node(str(value))
    except ValueError as e:
        raise PolicyError(f"{where}: {e}") from None


def _responder(i: int, raw) -> Responder:
    where = f"[[responders]] #{i + 1}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a table")
    known = {"name", "node", "public_key", "phone", "email", "ntfy_topic", "telegram_chat", "on_call", "contact_for"}
    extra = sorted(set(raw) - known)
    if extra:
        raise PolicyError(f"{where} {extra[0]}: unknown key; known keys: {', '.join(sorted(known))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise PolicyError(f"{where} name: expected a name of 1 to 64 characters")
    where = f"[[responders]] {name!r}"
    for key in ("phone", "email", "public_key", "ntfy_topic", "telegram_chat"):
        if key in raw and not isinstance(raw[key], str):
            raise PolicyError(f"{where} {key}: expected a string, found {raw[key]!r}")
    phone = raw.get("phone")
    if phone is not None and not re.fullmatch(r"\+?[0-9]{6,15}", phone):
        raise PolicyError(f"{where} phone: expected a number such as \"+221770000001\", found {phone!r}")
    email = raw.get("email")
    if email is not None and not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+", email):
        raise PolicyError(f"{where} email: expected an address such as \"maria@example.org\", found {email!r}")
    topic = raw.get("ntfy_topic")
    if topic is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", topic):
        raise PolicyError(f"{where} ntfy_topic: expected letters, digits, - and _, found {topic!r}")
    node = _node(raw["node"], f"{where} node") if "node" in raw else None
    key = raw.get("public_key")
    if node is not None:
        if not key:
            raise PolicyError(f"{where} public_key: a responder's node is reached by PKI and her ACK counts only "
                              "sealed with her key: give the key read from her node")
        from station.registry import RegistryError, normalise_key
        try:
            key = normalise_key(key)
        except RegistryError as e:
            raise PolicyError(f"{where} public_key: {e}") from None
    hours = raw.get("on_call", [])
    if not isinstance(hours, list):
        raise PolicyError(f"{where} on_call: expected a list of hours such as [\"mon-fri 08:00-18:00\"]")
    try:
        on_call = tuple(parse_hours(h) if isinstance(h, str) else parse_hours(repr(h)) for h in hours)
    except PolicyError as e:
        raise PolicyError(f"{where} on_call: {e}") from None
    contact_for = raw.get("contact_for", [])
    if not isinstance(contact_for, list):
        raise PolicyError(f"{where} contact_for: expected a list of bracelets such as [\"!a1b2c3d4\"]")
    contacts = frozenset(_node(n, f"{where} contact_for") for n in contact_for)
    if not any((node, phone, email, topic, raw.get("telegram_chat"))):
        raise PolicyError(f"{where}: no way to reach her: give node, phone, email, ntfy_topic or telegram_chat")
    return Responder(name.strip(), node, key, phone, email, topic, raw.get("telegram_chat"), on_call, contacts)


def _step(i: int, raw, names: set[str]) -> Step:
    where = f"[[escalation_steps]] #{i + 1}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a table")
    extra = sorted(set(raw) - {"after_s", "notify", "channels"})
    if extra:
        raise PolicyError(f"{where} {extra[0]}: unknown key; known keys: after_s, notify, channels")
    after = raw.get("after_s", 0)
    if isinstance(after, bool) or not isinstance(after, (int, float)) or after < 0:
        raise PolicyError(f"{where} after_s: expected seconds (0 or more), found {after!r}")
    who = raw.get("notify", "on_call")
    who = (who,) if isinstance(who, str) else tuple(who) if isinstance(who, list) else None
    if not who or not all(isinstance(w, str) for w in who):
        raise PolicyError(f"{where} notify: expected \"on_call\", \"all\" or a list of responders' names")
    if who not in (("on_call",), ("all",)):
        unknown = [w for w in who if w not in names]
        if unknown:
            raise PolicyError(f"{where} notify: no responder is named {unknown[0]!r}")
    channels = raw.get("channels", ["mesh", "sms", "email"])
    if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
        raise PolicyError(f"{where} channels: expected a list of {', '.join(CHANNELS)}, found {channels!r}")
    return Step(float(after), who, tuple(dict.fromkeys(channels)))


def parse(section: dict, responders, steps) -> Policy:
    """From the validated `[escalation]` section and the raw lists (None when absent)."""
    responders = responders or []
    steps = steps or []
    if not isinstance(responders, list) or not isinstance(steps, list):
        raise PolicyError("[[responders]] and [[escalation_steps]] are arrays of tables")
    people = tuple(_responder(i, r) for i, r in enumerate(responders))
    names = [r.name for r in people]
    if len(set(names)) != len(names):
        raise PolicyError(f"[[responders]]: the name {next(n for n in names if names.count(n) > 1)!r} is given twice")
    nodes = [r.node for r in people if r.node is not None]
    if len(set(nodes)) != len(nodes):
        raise PolicyError("[[responders]]: two responders give the same node")
    chain = tuple(_step(i, s, set(names)) for i, s in enumerate(steps))
    policy = Policy(section["enabled"], section["time_zone"], people, chain, section["ack_word"].upper())
    if policy.enabled and not policy.active:
        raise PolicyError("[escalation] enabled: escalation needs at least one [[responders]] and one "
                          "[[escalation_steps]]")
    return policy
