"""`station outbox list|retry|cancel|confirm`: what the relay will post, has posted, or could not."""

from __future__ import annotations

import getpass

import click

from station import queries
from station.cli.common import emit_json, open_db, table, when, write, station_now
from station.relay import outbox as ob


def _do(ctx, fn, row_id: int, message: str) -> None:
    try:
        write(open_db(ctx), lambda d: fn(d, row_id))
    except ob.OutboxError as e:
        raise click.ClickException(str(e)) from None
    click.echo(message)


def register(cli: click.Group) -> None:
    @cli.group("outbox")
    def grp() -> None:
        """Posts waiting, sent, failed or uncertain."""

    @grp.command("list")
    @click.option("--all", "include_done", is_flag=True, help="Include sent and cancelled posts.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def list_cmd(ctx, include_done: bool, as_json: bool) -> None:
        """Uncertain posts first (they need a person), then by priority."""
        rows = queries.outbox(open_db(ctx), include_done=include_done)
        if as_json:
            emit_json(rows)
            return
        if not rows:
            click.echo("the outbox is empty")
            return
        table([[r["id"], r["incident_id"], r["destination"], r["kind"],
                ("MAY HAVE BEEN POSTED — check " + (r["url"] or r["destination"])) if r["state"] == "uncertain"
                else r["state"], r["reason"] or "", when(r["sent_at"] or r["updated_at"])] for r in rows],
              ["ID", "ALERT", "DESTINATION", "KIND", "STATE", "REASON", "WHEN"])

    @grp.command("retry")
    @click.argument("row_id", type=int)
    @click.pass_context
    def retry_cmd(ctx, row_id: int) -> None:
        """Send a failed, uncertain (after checking it was not posted) or budget-held post again."""
        _do(ctx, lambda d, r: ob.retry(d, r, f"cli:{getpass.getuser()}", station_now()), row_id,
            f"outbox row {row_id} will be sent again")

    @grp.command("cancel")
    @click.argument("row_id", type=int)
    @click.pass_context
    def cancel_cmd(ctx, row_id: int) -> None:
        """Never send this post."""
        _do(ctx, lambda d, r: ob.cancel(d, r, f"cli:{getpass.getuser()}", station_now()), row_id,
            f"outbox row {row_id} cancelled")

    @grp.command("confirm")
    @click.argument("row_id", type=int)
    @click.option("--not-posted", is_flag=True, help="You checked: the post is NOT on the platform.")
    @click.option("--remote-id", help="The post's id on the platform, if you found it.")
    @click.option("--url", help="The post's address, if you found it.")
    @click.pass_context
    def confirm_cmd(ctx, row_id: int, not_posted: bool, remote_id: str | None, url: str | None) -> None:
        """Settle an uncertain post after checking the platform: it is there (default) or not."""
        _do(ctx, lambda d, r: ob.confirm(d, r, f"cli:{getpass.getuser()}", station_now(), remote_id, url,
                                         posted=not not_posted), row_id,
            f"outbox row {row_id} marked {'not posted (retry it to send)' if not_posted else 'posted'}")
