"""`station run` (the daemon) and `station demo` (the daemon on the virtual radio)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import click

from station import at_rest, daemon, logs
from station.cli.common import load_config, safe, when, write, station_now
from station.radio.ports import resolve_port
from station.storage import backup as bk
from station.radio.virtual import scenarios
from station.pins import PinKey, PinPolicy, configured_key_path
from station.radio.virtual.bracelets import register_cast
from station.storage import db as dbmod


def _logging(level: str, raw_frames: str = "") -> None:
    logs.setup(level, raw_frames)


def _start_local_console(cfg) -> None:
    """On the virtual radio only: the console in this process, and a demo account if there is
    none (a random password, printed once). A real station runs its console as its own service."""
    import secrets
    import threading

    import waitress

    from station import users
    from web import create_app

    app = create_app(cfg)
    host, port = cfg.console["host"], cfg.console["port"]
    try:
        server = waitress.create_server(app, host=host, port=port, threads=4)
    except OSError as e:
        click.echo(f"console not started: {host}:{port} is not available ({e.strerror}); set [console] port", err=True)
        return
    db = dbmod.connect(cfg.database_path)
    note = ""
    if db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0:
        password = secrets.token_urlsafe(9)
        write(db, lambda d: users.add(d, "demo", "coordinator", password, station_now(), "station demo"))
        note = f" — log in as demo / {password}"
    db.conn.close()
    threading.Thread(target=server.run, name="local-console", daemon=True).start()
    click.echo(f"console: http://{host}:{port}/{note}")


def register(cli: click.Group) -> None:
    @cli.command("run")
    @click.option("--port", help="Radio port for this run: /dev/ttyUSB0, tcp://HOST:PORT or sim.")
    @click.pass_context
    def run_cmd(ctx: click.Context, port: str | None) -> None:
        """Run the station daemon (in the foreground; systemd runs it as a service)."""
        cfg = load_config(ctx)
        if port:
            cfg = _override(cfg, radio={"port": port})
        _logging(cfg.log["level"], cfg.log["raw_frames"])
        try:
            at_rest.refuse_exposed(cfg)
        except at_rest.ExposedFiles as e:
            raise click.ClickException(str(e)) from None
        if resolve_port(cfg.radio["port"]) == "sim":
            _start_local_console(cfg)
        try:
            raise SystemExit(daemon.run(cfg))
        except dbmod.StorageError as e:
            raise click.ClickException(f"{e}: {bk.restore_hint(cfg.backup['dir'])}" if e.damaged else str(e)) from None

    @cli.command("demo")
    @click.option("--scenario", default="demo", show_default=True, type=click.Choice(sorted(scenarios.SCENARIOS)),
                  help="What the virtual bracelets do.")
    @click.option("--database", type=click.Path(dir_okay=False), default="station-data/demo.db", show_default=True,
                  help="Demo database (kept apart from a real station's).")
    @click.option("--speed", type=float, default=1.0, show_default=True, help="Scenario speed factor.")
    @click.option("--seconds", type=float, default=0, help="Stop after this long (0: until Ctrl-C).")
    @click.pass_context
    def demo_cmd(ctx: click.Context, scenario: str, database: str, speed: float, seconds: float) -> None:
        """Run the station on the virtual radio and print alerts as they arrive.

        Amina, Bashir and Chen are registered bracelets (cancel PINs 246813, 864213, 112233;
        duress PINs 135792, 975313, 998877). Every alert from the virtual radio is marked as a drill.
        """
        cfg = _override(load_config(ctx), radio={"port": "sim", "scenario": scenario},
                        storage={"database": str(Path(database).resolve())}, gpio={"enabled": False})
        _logging("WARNING")
        # A first demo in a fresh folder: its PIN key is made before its database, which would make the folder.
        cfg.database_path.parent.mkdir(parents=True, exist_ok=True)
        # The demo cast's PINs have six digits, whatever [alerts] min_pin_digits asks of real ones.
        register_cast(cfg.database_path, pin_policy=PinPolicy(PinKey.load(configured_key_path(cfg))))
        click.echo(f"station demo: scenario {scenario!r}, database {cfg.database_path}")
        _start_local_console(cfg)
        stop = threading.Event()
        printer = threading.Thread(target=_print_events, args=(cfg.database_path, stop), daemon=True)
        printer.start()
        if seconds:
            threading.Timer(seconds, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
        try:
            code = daemon.run(cfg, sim_speed=speed)
        finally:
            stop.set()
            printer.join(2)
        raise SystemExit(code)


def _override(cfg, **sections):
    from station.config import ConfigError
    try:
        return cfg.with_overrides(**sections)
    except ConfigError as e:
        raise click.ClickException(f"configuration: {e}") from None


def _print_events(path: Path, stop: threading.Event) -> None:
    db = dbmod.connect(path)
    last = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    while not stop.wait(0.5):
        rows = db.execute(
            "SELECT e.id, e.at, e.incident_id, e.actor, e.action, e.detail, COALESCE(b.label, n.long_name), "
            "i.node_num FROM events e LEFT JOIN incidents i ON i.id=e.incident_id "
            "LEFT JOIN bracelets b ON b.node_num=i.node_num LEFT JOIN nodes n ON n.num=i.node_num "
            "WHERE e.id > ? ORDER BY e.id", (last,)).fetchall()
        for eid, at, iid, actor, action, detail, name, num in rows:
            last = eid
            subject = f"alert {iid} ({safe(name)})" if iid else "station"
            click.echo(f"{when(at)}  {subject}: {safe(action)}" + (f" — {safe(detail)}" if detail else ""))
    db.conn.close()
