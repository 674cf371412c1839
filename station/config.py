"""The station's one TOML configuration file: where it is found, what it may hold, and its checks.

Every key has a default, so a station with no file at all runs (on the virtual radio when no
radio is plugged in). A wrong key or value stops start-up with a message that names the key,
what was expected and what was found: an office must not run on a half-understood config.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

SYSTEM_CONFIG = Path("/etc/station/station.toml")
ENV_VAR = "STATION_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message is meant for the operator."""


@dataclass(frozen=True)
class Key:
    default: Any
    kind: type | tuple[type, ...]
    check: Callable[[Any], str | None] | None = None


def _positive(v: Any) -> str | None:
    return None if v > 0 else "a number greater than 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "a number of 0 or more"


def _radio_port(v: str) -> str | None:
    if v in ("auto", "sim") or v.startswith("/"):
        return None
    if re.fullmatch(r"tcp://[^:/\s]+:\d{1,5}", v):
        return None
    return '"auto", "sim", a device path such as "/dev/ttyUSB0", or "tcp://HOST:PORT"'


def _at_least_a_minute(v: Any) -> str | None:
    return None if v >= 60 else "at least 60 (seconds)"


def _broker(v: str) -> str | None:
    # TLS always: the events say who pressed and where, and the claims decide what is published.
    if v == "" or re.fullmatch(r"mqtts://[^:/\s]+(:\d{1,5})?", v):
        return None
    return '"mqtts://HOST:PORT" (TLS; a plain mqtt:// link is refused)'


def _station_id(v: str) -> str | None:
    return None if re.fullmatch(r"[a-z0-9][a-z0-9_-]{1,31}", v) or v == "" else \
        "2 to 32 lower-case letters, digits, - or _ (it names the station's MQTT account and topics)"


def _gateways(v: list) -> str | None:
    if all(isinstance(g, str) and re.fullmatch(r"![0-9a-f]{8}", g) for g in v):
        return None
    return 'a list of node ids such as "!a1b2c3d4" (the gateways\' own, as they name themselves on the uplink)'


def _uplink_channel(v: str) -> str | None:
    return None if v == "" or re.fullmatch(r"[^/+#\s]{1,11}", v) else \
        "a channel name of 1 to 11 characters, without / + # or spaces (as its topic names it)"


def _audience_precision(v: str) -> str | None:
    return None if v in ("exact", "1km", "10km", "city", "none") else '"exact", "1km", "10km", "city" or "none"'


def _gps_port(v: str) -> str | None:
    return None if v == "" or v.startswith("/") else 'a device path such as "/dev/ttyAMA0", or "" for none'


def _baud(v: int) -> str | None:
    ok = (4800, 9600, 19200, 38400, 57600, 115200, 230400)
    return None if v in ok else "one of " + ", ".join(map(str, ok))


def _words(v: list) -> str | None:
    if all(isinstance(w, str) and w.strip() for w in v):
        return None
    return "a list of non-empty strings"


def _pin(v: int) -> str | None:
    return None if 0 <= v <= 27 else "a BCM GPIO number from 0 to 27"


def _recipients(v: list) -> str | None:
    from station.storage.age import valid_recipient
    if all(isinstance(r, str) and valid_recipient(r) for r in v):
        return None
    return 'a list of age recipients ("age1..." from station backup-keygen, or "ssh-ed25519 ...")'


def _pin_digits(v: int) -> str | None:
    return None if 4 <= v <= 8 else "a number of digits from 4 to 8"


def _gpio_enabled(v: Any) -> str | None:
    return None if v in (True, False, "auto") else 'true, false or "auto"'


def _zone(v: str) -> str | None:
    import zoneinfo
    try:
        zoneinfo.ZoneInfo(v)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return 'an IANA time zone such as "UTC" or "Africa/Dakar"'


def _port(v: int) -> str | None:
    return None if 1 <= v <= 65535 else "a TCP port from 1 to 65535"


def _level(v: str) -> str | None:
    return None if v.upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else "DEBUG, INFO, WARNING or ERROR"


def _enum_name(enum_path: str, example: str) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        from meshtastic.protobuf import config_pb2
        enum = config_pb2.Config
        for part in enum_path.split("."):
            enum = getattr(enum, part)
        names = [n for n in enum.keys() if n != "UNSET"]
        return None if v in names else f'one of {", ".join(names)} (such as "{example}")'
    return check


def _region(v: str) -> str | None:
    return None if v == "" else _enum_name("LoRaConfig.RegionCode", "EU_868")(v)


def _channel_name(v: str) -> str | None:
    # channel.options: char[12]; the firmware cuts a longer name, and a bracelet set with the
    # full one would then be on another channel.
    return None if len(v.encode()) <= 11 and "\0" not in v else "a name of at most 11 bytes"


def _hops(v: int) -> str | None:
    return None if 1 <= v <= 7 else "a hop count from 1 to 7"


def _precision(v: int) -> str | None:
    return None if v == 0 or 10 <= v <= 32 else "0 (no position), 10 to 31 bits, or 32 (exact)"


def _version(v: str) -> str | None:
    return None if re.fullmatch(r"\d+\.\d+\.\d+", v) else 'a version such as "2.7.4"'


def _ack_word(v: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z]{2,10}", v) else "a word of 2 to 10 letters"


def _email_security(v: str) -> str | None:
    return None if v in ("starttls", "tls") else '"starttls" (port 587) or "tls" (port 465); never plain'


def _http_url(v: str) -> str | None:
    return None if v == "" or re.fullmatch(r"https?://[^\s/]+(/\S*)?", v) else 'an http(s):// address, or ""'


SCHEMA: dict[str, dict[str, Key]] = {
    "radio": {
        "port": Key("auto", str, _radio_port),
        "scenario": Key("demo", str),
        "heartbeat_s": Key(15.0, (int, float), _positive),
        "liveness_timeout_s": Key(45.0, (int, float), _positive),
        "handshake_timeout_s": Key(10.0, (int, float), _positive),
        "reconnect_min_s": Key(0.5, (int, float), _positive),
        "reconnect_max_s": Key(30.0, (int, float), _positive),
        "ready_timeout_s": Key(20.0, (int, float), _non_negative),
    },
    "mesh": {
        "region": Key("", str, _region),
        "modem_preset": Key("LONG_FAST", str, _enum_name("LoRaConfig.ModemPreset", "LONG_FAST")),
        "channel_name": Key("", str, _channel_name),
        "psk_file": Key("", str),
        "hop_limit": Key(3, int, _hops),
        "role": Key("CLIENT", str, _enum_name("DeviceConfig.Role", "CLIENT")),
        "position_precision": Key(32, int, _precision),
        "min_firmware": Key("2.7.4", str, _version),
    },
    "storage": {
        "database": Key("station-data/station.db", str),
        "batch_max": Key(512, int, _positive),
        "commit_window_ms": Key(5.0, (int, float), _non_negative),
    },
    "gps": {
        "port": Key("", str, _gps_port),
        "baud": Key(9600, int, _baud),
        "clock_margin_s": Key(5.0, (int, float), _positive),
        "store_interval_s": Key(900.0, (int, float), _positive),
    },
    "alerts": {
        "keywords": Key(["SOS", "HELP", "AIDE", "SOCORRO"], list, _words),
        "cancel_keywords": Key(["SAFE", "CANCEL"], list, _words),
        "fold_window_s": Key(600.0, (int, float), _positive),
        "min_pin_digits": Key(6, int, _pin_digits),
        "pin_key_file": Key("", str),
    },
    "receipts": {
        "enabled": Key(True, bool),
        "received_text": Key("Alert received by the base station", str),
        "cancel_text": Key("Cancel received", str),
        "min_interval_s": Key(30.0, (int, float), _non_negative),
        "ttl_s": Key(600.0, (int, float), _positive),
        "ack_timeout_s": Key(60.0, (int, float), _positive),
        "max_attempts": Key(3, int, _positive),
        "retry_after_s": Key(30.0, (int, float), _positive),
    },
    "gpio": {
        "enabled": Key("auto", (bool, str), _gpio_enabled),
        "alert_led": Key(17, int, _pin),
        "link_led": Key(27, int, _pin),
        "internet_led": Key(22, int, _pin),
        "buzzer": Key(18, int, _pin),
        "ack_button": Key(23, int, _pin),
        "hold_s": Key(2.0, (int, float), _positive),
    },
    "log": {
        "level": Key("INFO", str, _level),
        "raw_frames": Key("", str),
    },
    "console": {
        "host": Key("127.0.0.1", str),
        "port": Key(8080, int, _port),
        "secret_file": Key("", str),
        "idle_minutes": Key(30.0, (int, float), _positive),
        "secure_cookies": Key(False, bool),
        "threads": Key(96, int, _positive),
        "certificate": Key("", str),
        "plain_http_on_lan": Key(False, bool),
        "low_battery_percent": Key(20, int, _non_negative),
    },
    "backup": {
        "dir": Key("", str),
        "keep": Key(7, int, _positive),
        "recipients": Key([], list, _recipients),
        "plaintext": Key(False, bool),
    },
    "retention": {
        "unregistered_days": Key(30.0, (int, float), _non_negative),
        "track_days": Key(90.0, (int, float), _non_negative),
    },
    "relay": {
        "enabled": Key(True, bool),
        "templates_dir": Key("", str),
        "time_zone": Key("UTC", str, _zone),
        "max_attempts": Key(8, int, _positive),
        "backoff_max_s": Key(900.0, (int, float), _positive),
        "probe_interval_s": Key(30.0, (int, float), _positive),
        "offline_probe_interval_s": Key(2.0, (int, float), _positive),
        "online_after": Key(2, int, _positive),
        "offline_after": Key(2, int, _positive),
        "city_radius_km": Key(30.0, (int, float), _positive),
        "update_every_min": Key(30.0, (int, float), _positive),
    },
    "escalation": {
        "enabled": Key(False, bool),
        "time_zone": Key("UTC", str, _zone),
        "ack_word": Key("ACK", str, _ack_word),
    },
    "watch": {
        "enabled": Key(True, bool),
        "report_every_s": Key(900.0, (int, float), _at_least_a_minute),
        "silent_alarm_after_s": Key(3600.0, (int, float), _non_negative),
        "checkin_grace_s": Key(600.0, (int, float), _non_negative),
        "checkin_word": Key("OK", str, _ack_word),
        "time_zone": Key("UTC", str, _zone),
    },
    "network": {
        "enabled": Key(False, bool),
        "broker": Key("", str, _broker),
        "station_id": Key("", str, _station_id),
        "password_file": Key("", str),
        "ca_file": Key("", str),
        "topic_root": Key("ngo", str, _station_id),
        "precision": Key("exact", str, _audience_precision),
        "claim_wait_s": Key(60.0, (int, float), _positive),
        "keepalive_s": Key(30, int, _positive),
    },
    "uplink": {
        "enabled": Key(False, bool),
        "broker": Key("", str, _broker),
        "username": Key("", str),
        "password_file": Key("", str),
        "ca_file": Key("", str),
        "topic_root": Key("msh", str),
        "channel": Key("", str, _uplink_channel),
        "channel_key_file": Key("", str),
        "gateways": Key([], list, _gateways),
        "keepalive_s": Key(30, int, _positive),
    },
    "hub": {
        "database": Key("hub.db", str),
        "broker": Key("", str, _broker),
        "username": Key("hub", str, _station_id),
        "password_file": Key("", str),
        "ca_file": Key("", str),
        "topic_root": Key("ngo", str, _station_id),
        "fold_window_s": Key(600.0, (int, float), _positive),
        "keepalive_s": Key(30, int, _positive),
    },
    "email": {
        "host": Key("", str),
        "port": Key(587, int, _port),
        "security": Key("starttls", str, _email_security),
        "username": Key("", str),
        "password_file": Key("", str),
        "sender": Key("", str),
        "ca_file": Key("", str),
        "timeout_s": Key(20.0, (int, float), _positive),
    },
    "sms": {
        "port": Key("", str, _gps_port),
        "baud": Key(115200, int, _baud),
        "pin_file": Key("", str),
        "timeout_s": Key(30.0, (int, float), _positive),
    },
    "push": {
        "ntfy_url": Key("", str, _http_url),
        "ntfy_token_file": Key("", str),
        "telegram_api": Key("https://api.telegram.org", str, _http_url),
        "telegram_token_file": Key("", str),
        "timeout_s": Key(15.0, (int, float), _positive),
    },
}
# Arrays of tables: the relay's (station/relay/settings.py) and the escalation's (station/escalation/policy.py).
# Keys an older station knew, and what says it now: a clear stop rather than a silent change.
REPLACED = {
    ("console", "silent_after_min"): "replaced by [watch] report_every_s: a bracelet is flagged silent after twice "
                                     "its reporting interval (set per wearer with station bracelets watch)",
}
LISTS = ("destinations", "places", "responders", "escalation_steps")


@dataclass(frozen=True)
class Config:
    """Validated configuration: `cfg.radio["port"]`, `cfg.storage["database"]`, ..."""

    sections: dict[str, dict[str, Any]]
    source: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    lists: dict[str, list] = field(default_factory=dict)

    def __getattr__(self, name: str) -> dict[str, Any]:
        try:
            return self.sections[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def database_path(self) -> Path:
        p = Path(self.sections["storage"]["database"])
        return p if p.is_absolute() else self.base_dir / p

    def with_overrides(self, **sections: Any) -> "Config":
        merged: dict[str, Any] = {s: dict(v) for s, v in self.sections.items()}
        merged.update({k: list(v) for k, v in self.lists.items()})
        for name, values in sections.items():
            if name in LISTS:
                merged[name] = values
            else:
                merged[name].update(values)
        return validate(merged, self.source, self.base_dir)

    def destinations(self, *, read_secrets: bool = False):
        """The [[destinations]]; credentials are read only when asked (the daemon, at start)."""
        from station.relay import settings
        try:
            return settings.destinations(self.lists.get("destinations"), self.base_dir, read_secrets=read_secrets)
        except settings.SettingsError as e:
            raise ConfigError(str(e)) from None

    def places(self):
        from station.relay import settings
        return settings.places(self.lists.get("places"))

    def escalation(self):
        """The escalation policy (station/escalation/policy.py)."""
        from station.escalation import policy
        try:
            return policy.parse(self.sections["escalation"], self.lists.get("responders"),
                                self.lists.get("escalation_steps"))
        except policy.PolicyError as e:
            raise ConfigError(str(e)) from None


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _check_value(section: str, name: str, key: Key, value: Any) -> Any:
    where = f"[{section}] {name}"
    kinds = key.kind if isinstance(key.kind, tuple) else (key.kind,)
    # bool is an int in Python; a `port = true` must not pass as a number.
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError(f"{where}: expected {_type_name(key.kind)}, found {value!r}")
    if not isinstance(value, kinds):
        raise ConfigError(f"{where}: expected {_type_name(key.kind)}, found {value!r}")
    if key.check is not None:
        problem = key.check(value)
        if problem:
            raise ConfigError(f"{where}: expected {problem}, found {value!r}")
    return value


def validate(raw: dict[str, Any], source: Path | None = None, base_dir: Path | None = None) -> Config:
    unknown = sorted(set(raw) - set(SCHEMA) - set(LISTS))
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}]; known sections: " + ", ".join(SCHEMA))
    sections: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"[{section}]: expected a table, found {given!r}")
        extra = sorted(set(given) - set(keys))
        if extra and (section, extra[0]) in REPLACED:
            raise ConfigError(f"[{section}] {extra[0]}: {REPLACED[(section, extra[0])]}")
        if extra:
            raise ConfigError(
                f"[{section}] {extra[0]}: unknown key; known keys: " + ", ".join(keys)
            )
        sections[section] = {
            name: _check_value(section, name, key, given[name]) if name in given else key.default
            for name, key in keys.items()
        }
    w = sections["watch"]
    if w["checkin_word"].casefold() in {k.casefold() for k in sections["alerts"]["keywords"] +
                                        sections["alerts"]["cancel_keywords"]}:
        raise ConfigError(f"[watch] checkin_word: expected a word that is not an alert or cancel keyword, found "
                          f"{w['checkin_word']!r}")
    if w["silent_alarm_after_s"] and w["silent_alarm_after_s"] < 2 * w["report_every_s"]:
        raise ConfigError(f"[watch] silent_alarm_after_s: expected 0 (no alarm) or at least twice report_every_s "
                          f"({2 * w['report_every_s']:g}), found {w['silent_alarm_after_s']!r}")
    n = sections["network"]
    if n["enabled"]:
        for key in ("broker", "station_id", "password_file"):
            if not n[key]:
                raise ConfigError(f"[network] {key}: expected a value when enabled = true, found nothing")
    u = sections["uplink"]
    if u["enabled"]:
        for key in ("broker", "username", "password_file", "channel", "channel_key_file", "gateways"):
            if not u[key]:
                raise ConfigError(f"[uplink] {key}: expected a value when enabled = true, found nothing")
    if sections["radio"]["reconnect_min_s"] > sections["radio"]["reconnect_max_s"]:
        raise ConfigError(
            "[radio] reconnect_min_s: expected at most reconnect_max_s "
            f"({sections['radio']['reconnect_max_s']}), found {sections['radio']['reconnect_min_s']}"
        )
    if base_dir is None:
        base_dir = source.parent if source else Path.cwd()
    cfg = Config(sections, source, base_dir, {k: raw[k] for k in LISTS if k in raw})
    cfg.destinations(read_secrets=False)   # the shape is checked now; secrets when the relay starts
    try:
        cfg.places()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    cfg.escalation()
    return cfg


def find_config_path(explicit: str | os.PathLike | None, environ: dict[str, str] | None = None) -> Path | None:
    """--config, then $STATION_CONFIG, then /etc/station/station.toml; None means built-in defaults."""
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR])
    if SYSTEM_CONFIG.exists():
        return SYSTEM_CONFIG
    return None


def user_data_dir(environ: dict[str, str] | None = None) -> Path:
    """Where a station with no config file keeps its database: one place for the user, whatever
    folder a command runs from ($XDG_DATA_HOME/station, else ~/.local/share/station)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).resolve() / "station"


def load(explicit: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Config:
    path = find_config_path(explicit, environ)
    if path is None:
        # Not relative to the current folder: `station alerts list` run from another folder
        # would otherwise read (and create) another, empty database and say "No open alerts".
        data = user_data_dir(environ)
        return validate({"storage": {"database": str(data / "station.db")}}, None, data)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable by this user") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    return validate(raw, path)
