"""`station console`: the coordinator console under waitress."""

from __future__ import annotations

import signal

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
        from station import certificate
        cfg = load_config(ctx)
        host = host or cfg.console["host"]
        port = port or cfg.console["port"]
        if not certificate.loopback(host) and not cfg.console["plain_http_on_lan"]:
            raise click.ClickException(
                f"will not serve the console in plain HTTP on {host}: anyone on the network would read passwords and "
                "alerts. Keep [console] host = \"127.0.0.1\" and let nginx serve HTTPS to the office (sudo ./install.sh "
                "sets it up; see the README), or set [console] plain_http_on_lan = true for a closed lab")
        app = create_app(cfg)
        try:
            # Behind nginx on this machine: the client's address and scheme come from its headers,
            # trusted from loopback only, so the login throttle counts each LAN device apart.
            server = waitress.create_server(app, host=host, port=port, threads=cfg.console["threads"], channel_timeout=150,
                                            trusted_proxy="127.0.0.1", trusted_proxy_count=1,
                                            trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"},
                                            clear_untrusted_proxy_headers=True)
        except OSError as e:
            # Usually another console (or `station demo`) already on the port: one line, not a traceback.
            raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}; is another console "
                                       "running? (systemctl status station-console) or choose --port") from None
        click.echo(f"console on http://{host}:{port}/")
        _announce_first_run(cfg)

        def hangup(signum, frame):
            # The SSH session that started it ended, or someone sent a reload: it keeps serving.
            click.echo("SIGHUP ignored: the console keeps serving; restart it to apply [console] settings", err=True)
        signal.signal(signal.SIGHUP, hangup)
        server.run()


def _announce_first_run(cfg) -> None:
    from station.storage import db as dbmod
    from web import first_run
    conn = dbmod.connect(cfg.database_path, create=False)
    try:
        if first_run.needed(conn):
            click.echo(f"no account yet: open the console and create the administrator with setup code "
                       f"{first_run.code(cfg)} (kept in {first_run.code_path(cfg)})", err=True)
    finally:
        conn.conn.close()
