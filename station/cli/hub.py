"""`station hub run|status|broker-config`: the NGO's hub over MQTT (station/hub)."""

from __future__ import annotations

import secrets
import signal
import sqlite3
import threading
from pathlib import Path

import click

from station.cli.common import emit_json, load_config, table, when


def register(cli: click.Group) -> None:
    @cli.group("hub")
    def grp() -> None:
        """The NGO's hub: every station's alerts as one, over an MQTT broker."""

    @grp.command("run")
    @click.pass_context
    def run_cmd(ctx) -> None:
        """Run the hub (in the foreground; systemd runs it as station-hub.service)."""
        from station.hub.service import Hub, HubError
        from station.logs import setup
        from station.sdnotify import Notifier
        cfg = load_config(ctx)
        setup(cfg.log["level"], "")
        try:
            hub = Hub(cfg).start()
        except HubError as e:
            raise click.ClickException(str(e)) from None
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.set())
        notifier = Notifier()
        notifier.notify("READY=1", "STATUS=hub running")
        click.echo(f"hub running on {cfg.hub['broker']}, database {cfg.base_dir / cfg.hub['database']}", err=True)
        try:
            while not stop.wait(5):
                s = hub.status()
                notifier.notify(f"STATUS=broker {'connected' if s['connected'] else s['error']}; "
                                f"{s['applied']} events applied, {s['duplicates']} redelivered")
        finally:
            notifier.notify("STOPPING=1")
            hub.stop()

    @grp.command("status")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def status_cmd(ctx, as_json: bool) -> None:
        """The stations the hub has heard from, and every alert with the stations that heard it."""
        from station.hub import views
        cfg = load_config(ctx)
        path = cfg.base_dir / cfg.hub["database"]
        if not path.exists():
            raise click.ClickException(f"no hub database at {path}: is the hub running (station hub run)?")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            stations = [dict(zip(("id", "last_seen", "events", "last_seq"), r)) for r in db.execute(
                "SELECT id, last_seen, events, last_seq FROM stations ORDER BY id")]
            alerts = views.alerts(db)
        if as_json:
            emit_json({"stations": stations, "alerts": alerts})
            return
        table([[s["id"], when(s["last_seen"]), s["events"]] for s in stations], ["STATION", "LAST SEEN", "EVENTS"])
        click.echo("")
        table([[a["id"], a["node"], a["state"], when(a["opened_at"]), a["stations"] or "-", a["acknowledged"] or "-",
                a["claims"] or "-"] for a in alerts],
              ["ALERT", "NODE", "STATE", "OPENED", "HEARD BY", "ACKNOWLEDGED", "POSTED BY"])

    @grp.command("broker-config")
    @click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
    @click.option("--station", "stations", multiple=True, required=True,
                  help="A station's id (its [network] station_id); repeat for each.")
    @click.option("--cert", type=click.Path(exists=True, dir_okay=False), required=True,
                  help="The broker's TLS certificate (PEM).")
    @click.option("--key", type=click.Path(exists=True, dir_okay=False), required=True, help="Its private key.")
    @click.option("--ca", type=click.Path(exists=True, dir_okay=False), required=True,
                  help="The CA that signed it (the stations' and the hub's ca_file).")
    @click.option("--port", default=8883, show_default=True)
    @click.option("--bind", default="0.0.0.0", show_default=True)
    @click.option("--root", default="ngo", show_default=True, help="The topic root ([network] topic_root).")
    @click.option("--user", "run_as", default="mosquitto", show_default=True,
                  help="Whom mosquitto runs as (it must read these files).")
    @click.option("--rabbitmq", "rabbit_nodes", multiple=True, metavar="rabbit@HOST",
                  help="Write a RabbitMQ cluster's configuration instead, for these nodes (repeat for each).")
    @click.option("--gateway", "gateways", multiple=True, metavar="NAME",
                  help="An account for a Meshtastic gateway radio, which may write only its MQTT uplink "
                       "(msh/2/e/...), read by the stations' [uplink]; repeat for each.")
    def broker_config_cmd(folder: Path, stations, cert, key, ca, port, bind, root, run_as, rabbit_nodes,
                          gateways) -> None:
        """Write mosquitto's configuration for the network: TLS only, one account per station and
        the hub (a new password each, in FOLDER/NAME.password), and the ACL. Copy each station's
        password file to it ([network] password_file); the hub's to the hub ([hub] password_file).

        With --rabbitmq, a RabbitMQ cluster's instead (rabbitmq.conf, enabled_plugins,
        definitions.json, erlang.cookie: the same four files on every node), with the same accounts
        and rules."""
        from station.hub import broker, rabbitmq
        from station.config import ConfigError, _station_id
        accounts = {}
        for name in ("hub", *stations, *gateways):
            problem = _station_id(name)
            if problem:
                raise click.BadParameter(f"{name!r}: expected {problem}",
                                         param_hint="--gateway" if name in gateways else "--station")
            accounts[name] = secrets.token_urlsafe(24)
        if len(accounts) != len(stations) + len(gateways) + 1:
            raise click.BadParameter("each station and gateway once, and none named hub", param_hint="--station")
        if gateways and rabbit_nodes:
            raise click.BadParameter("the gateways' uplink goes to the office's mosquitto, not to the cluster",
                                     param_hint="--gateway")
        tls = {"cert": Path(cert).resolve(), "key": Path(key).resolve(), "ca": Path(ca).resolve()}
        try:
            if rabbit_nodes:
                conf = rabbitmq.write(folder, accounts=accounts, nodes=list(rabbit_nodes), port=port, bind=bind,
                                      root=root, installed_in=Path("/etc/rabbitmq"), **tls)
            else:
                conf = broker.write(folder, accounts=accounts, port=port, bind=bind, root=root, user=run_as,
                                    gateways=tuple(gateways), **tls)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--rabbitmq") from None
        except (OSError, ConfigError) as e:
            raise click.ClickException(str(e)) from None
        for name, password in accounts.items():
            p = folder / f"{name}.password"
            p.write_text(password + "\n")
            p.chmod(0o600)
        click.echo(f"wrote {conf} with accounts {', '.join(accounts)}; their passwords are in {folder}/NAME.password")
        if rabbit_nodes:
            click.echo(f"copy rabbitmq.conf, enabled_plugins and definitions.json to /etc/rabbitmq/ on each of "
                       f"{', '.join(rabbit_nodes)}, and erlang.cookie to /var/lib/rabbitmq/.erlang.cookie "
                       "(owner rabbitmq, mode 0400); start the first node, then the others "
                       "(systemd: rabbitmq-server.service)")
        else:
            click.echo(f"run it: mosquitto -c {conf} (systemd: station-hub-broker.service)")
