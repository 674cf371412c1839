"""What every command shares: the config, the database, and output that is safe to print."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import sys
from typing import Any

import click

from station import config as configmod
from station.storage import db as dbmod
from station.storage.migrations import migrate

# C0/C1 controls, DEL, and the Unicode bidi overrides that can reorder a terminal line: a node
# name is chosen by whoever owns the node, and must not repaint an operator's screen.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def safe(text: Any) -> str:
    if text is None:
        return "-"
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                       str(text))


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 90:
        return f"{s}s"
    if s < 5400:
        return f"{s // 60}min"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def load_config(ctx: click.Context) -> configmod.Config:
    obj = ctx.find_root().obj or {}
    if "config" not in obj:
        try:
            obj["config"] = configmod.load(obj.get("config_path"))
        except configmod.ConfigError as e:
            raise click.ClickException(f"configuration: {e}") from None
        ctx.find_root().obj = obj
    return obj["config"]


def station_now() -> float:
    """Now on the station's clock (station/runtime.py), for what a command writes."""
    from station import runtime
    return runtime.station_now(load_config(click.get_current_context()).database_path)


def open_db(ctx: click.Context, *, migrate_schema: bool = True):
    cfg = load_config(ctx)
    if not cfg.database_path.exists():
        # Said on standard error, so that JSON output stays clean: an empty answer from a new,
        # empty database must not pass for "no alerts" at the station.
        click.echo(f"note: no database at {cfg.database_path} yet; starting an empty one"
                   + ("" if cfg.source else " (no config file: --config, $STATION_CONFIG or /etc/station/station.toml)"),
                   err=True)
    try:
        db = dbmod.connect(cfg.database_path)
        if migrate_schema:
            try:
                migrate(db)
            except sqlite3.OperationalError as e:     # locked, read-only medium
                raise dbmod.StorageError(dbmod.explain(cfg.database_path, e)) from None
            except sqlite3.DatabaseError as e:
                raise dbmod.unusable(cfg.database_path, e) from None
        return db
    except dbmod.StorageError as e:
        from station.storage.backup import restore_hint
        raise click.ClickException(f"{e}: {restore_hint(cfg.backup['dir'])}" if e.damaged else str(e)) from None
    except Exception as e:  # a schema newer than this software
        raise click.ClickException(f"database {cfg.database_path}: {e}") from None


def write(db, fn):
    """Run one change in its own transaction (the daemon may be writing too: busy_timeout waits)."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        raise click.ClickException(
            f"database is {'locked by another process (a backup, or a stuck command?)' if 'locked' in str(e) else e}; "
            "nothing was changed, try again") from None
    try:
        out = fn(db)
        db.execute("COMMIT")
        return out
    except BaseException:
        db.execute("ROLLBACK")
        raise


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=True))


def table(rows: list[list[Any]], headers: list[str]) -> None:
    cells = [[safe(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def ask_pins(ctx: click.Context, from_stdin: bool) -> tuple[str | None, str | None]:
    """The cancel and duress PINs, hashed with the station's PIN key. Never options: a PIN on the
    command line stays in the shell's history and in `ps` for everyone on the machine."""
    import sys

    from station.pins import PinError, PinPolicy
    if from_stdin:
        cancel, duress = sys.stdin.readline().strip(), sys.stdin.readline().strip()
    else:
        cancel = click.prompt("cancel PIN (empty: none)", hide_input=True, default="", show_default=False)
        duress = click.prompt("duress PIN (empty: none)", hide_input=True, default="", show_default=False)
    try:
        return PinPolicy.of(load_config(ctx)).hash_pair(cancel or None, duress or None)
    except (PinError, OSError) as e:
        raise click.ClickException(str(e)) from None
