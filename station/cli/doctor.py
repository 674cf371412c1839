"""`station doctor`: check everything a station needs; explain each problem and its remedy."""

from __future__ import annotations

import click

from station import doctor
from station.cli.common import emit_json, safe

MARK = {doctor.OK: "ok  ", doctor.WARN: "WARN", doctor.FAIL: "FAIL", doctor.UNKNOWN: " ?  "}


def register(cli: click.Group) -> None:
    @cli.command("doctor")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the console uses it).")
    @click.option("--user", default="station", show_default=True, help="The service user whose groups to check.")
    @click.pass_context
    def doctor_cmd(ctx, as_json: bool, user: str) -> None:
        """Check config, permissions, radio, groups, GPIO, GPS and clock, database, disk, backups,
        services and power. Exits 1 when something needs action."""
        checks = doctor.run(ctx.find_root().obj.get("config_path"), service_user=user)
        if as_json:
            emit_json([c.to_dict() for c in checks])
        else:
            for c in checks:
                click.echo(f"[{MARK[c.status]}] {c.name}: {safe(c.message)}")
                if c.remedy and c.status in (doctor.WARN, doctor.FAIL):
                    click.echo(f"        → {safe(c.remedy)}")
        if any(c.status == doctor.FAIL for c in checks):
            raise SystemExit(1)
