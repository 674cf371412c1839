"""`station console`: the coordinator console under waitress."""

from __future__ import annotations

import click

from station.cli.common import load_config


def register(cli: click.Group) -> None:
    @cli.command("console")
    @click.option("--host", help="Listen address (default: [console] host).")
    @click.option("--port", type=int, help="Port (default: [console] port).")
    @click.pass_context
    def console_cmd(ctx, host: str | None, port: int | None) -> None:
        """Serve the coordinator console (a separate process from the daemon: if it stops,
        alerts are still received and stored)."""
        import waitress

        from web import create_app
        cfg = load_config(ctx)
        app = create_app(cfg)
        host = host or cfg.console["host"]
        port = port or cfg.console["port"]
        click.echo(f"console on http://{host}:{port}/ (create accounts with `station users add`)")
        waitress.serve(app, host=host, port=port, threads=8, channel_timeout=330)
