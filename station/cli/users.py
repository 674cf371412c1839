"""`station users add|list`: console accounts (there is no default account)."""

from __future__ import annotations

import getpass
import sys

import click

from station import users
from station.cli.common import emit_json, open_db, table, when, write, station_now


def register(cli: click.Group) -> None:
    @cli.group("users")
    def grp() -> None:
        """Console accounts and their roles."""

    @grp.command("add")
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice(users.ROLES))
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
    @click.pass_context
    def add_cmd(ctx, name: str, role: str, password_stdin: bool) -> None:
        """Create a console account (asks for the password twice)."""
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            write(open_db(ctx), lambda d: users.add(d, name, role, password, station_now(), f"cli:{getpass.getuser()}"))
        except users.UserError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"user {name} added ({role})")

    @grp.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def list_cmd(ctx, as_json: bool) -> None:
        """Accounts, roles and last logins (never passwords)."""
        rows = open_db(ctx).execute("SELECT name, role, created_at, last_login, disabled FROM users ORDER BY name").fetchall()
        if as_json:
            emit_json([dict(zip(("name", "role", "created_at", "last_login", "disabled"), r)) for r in rows])
            return
        table([[r[0], r[1], when(r[2]), when(r[3]), "disabled" if r[4] else ""] for r in rows],
              ["NAME", "ROLE", "CREATED", "LAST LOGIN", ""])
