"""`station users`: console accounts (there is no default account; the console's first-run page
creates the first administrator with a setup code)."""

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
        password = _password(password_stdin)
        _change(ctx, lambda d, at, actor: users.add(d, name, role, password, at, actor))
        click.echo(f"user {name} added ({role})")

    @grp.command("passwd")
    @click.argument("name")
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
    @click.pass_context
    def passwd_cmd(ctx, name: str, password_stdin: bool) -> None:
        """Set a new password; every console session of the account ends."""
        password = _password(password_stdin)
        _change(ctx, lambda d, at, actor: users.set_password(d, name, password, at, actor))
        click.echo(f"password of {name} changed; its sessions ended")

    @grp.command("role")
    @click.argument("name")
    @click.argument("role", type=click.Choice(users.ROLES))
    @click.pass_context
    def role_cmd(ctx, name: str, role: str) -> None:
        """Change an account's role (the last administrator keeps hers)."""
        _change(ctx, lambda d, at, actor: users.set_role(d, name, role, at, actor))
        click.echo(f"{name} is now {role}")

    # The account actions that take only its name: what each says, does, and prints (n: its count).
    by_name = {
        "disable": ("Stop an account logging in; its sessions end at once.",
                    lambda d, name, at, actor: users.set_disabled(d, name, True, at, actor), "{name} disabled"),
        "enable": ("Let a disabled account log in again.",
                   lambda d, name, at, actor: users.set_disabled(d, name, False, at, actor), "{name} enabled"),
        "unlock": ("Lift the login locks that wrong passwords put on an account.", users.unlock,
                   "{name} unlocked ({n} client(s) were locked out)"),
        "revoke": ("End every console session of an account (a lost phone, a stolen laptop).", users.revoke,
                   "{n} session(s) of {name} ended"),
    }
    for command, (help_text, change, said) in by_name.items():
        _by_name(grp, command, help_text, change, said)

    @grp.command("setup-code")
    @click.pass_context
    def setup_code_cmd(ctx) -> None:
        """The one-time code the console's first-run page asks for (only while no account exists)."""
        from station.cli.common import load_config
        from web import first_run
        cfg = load_config(ctx)
        if not first_run.needed(open_db(ctx)):
            raise click.ClickException("accounts exist already: the first-run page is closed")
        click.echo(first_run.code(cfg))

    @grp.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def list_cmd(ctx, as_json: bool) -> None:
        """Accounts, roles and last logins (never passwords)."""
        rows = users.accounts(open_db(ctx), station_now())
        if as_json:
            emit_json(rows)
            return
        table([[r["name"], r["role"], when(r["created_at"]), when(r["last_login"]), r["sessions"],
                ", ".join(x for x in ("disabled" if r["disabled"] else "",
                                      f"locked for {r['locked_clients']} client(s)" if r["locked_clients"] else "") if x)]
               for r in rows], ["NAME", "ROLE", "CREATED", "LAST LOGIN", "SESSIONS", ""])


def _by_name(grp: click.Group, command: str, help_text: str, change, said: str) -> None:
    @grp.command(command, help=help_text)
    @click.argument("name")
    @click.pass_context
    def cmd(ctx, name: str) -> None:
        n = _change(ctx, lambda d, at, actor: change(d, name, at, actor))
        click.echo(said.format(name=name, n=n))


def _password(from_stdin: bool) -> str:
    # Never an argument: a password on the command line ends up in the shell's history and ps.
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _change(ctx, fn):
    try:
        return write(open_db(ctx), lambda d: fn(d, station_now(), f"cli:{getpass.getuser()}"))
    except users.UserError as e:
        raise click.ClickException(str(e)) from None
