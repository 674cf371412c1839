"""`station radio info | check | configure | backup | restore`: the station's radio against the
mesh profile, and its identity kept safe.

While the daemon runs it owns the serial port: `info` and `check` read what it recorded at the
radio's last handshake, and `configure` hands the change to it as a job. When it does not run,
these commands open the radio themselves (station/radio/session.py). `backup` and `restore` need
the port itself: the daemon lends it to them for at most LEND_S seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import sys
import time
from pathlib import Path

import click
from meshtastic.protobuf import channel_pb2, config_pb2

from station import queries
from station.cli.common import emit_json, load_config, open_db, safe, when, station_now
from station.incidents import log_event
from station.radio import backup as radio_backup
from station.radio import configure, jobs, lending
from station.radio.admin import AdminRefused, RadioAdmin
from station.radio.channels import PRESET_NAMES, key_id
from station.radio import profile as profiles
from station.radio.info import RadioInfo
from station.radio.info import findings as setup_findings
from station.radio.link import LinkDown
from station.radio.ports import RadioUnavailable
from station.radio.session import radio_session
from station.storage import records
from station.wording import Wording

LEND_S = 300.0           # a command that borrows the port gives it back by then at the latest
JOB_TIMEOUT_S = 180.0    # a commit, the firmware's 7 s reboot, a new handshake, with room to spare


@dataclasses.dataclass
class Seen:
    info: RadioInfo
    source: str              # "daemon" or the port opened directly
    queue: list | None


def _seen(ctx: click.Context) -> Seen:
    cfg = load_config(ctx)
    db = open_db(ctx)
    st = queries.status(db)
    if st["daemon_running"]:
        got = records.get_state(db, "radio_info")
        if not got:
            raise click.ClickException("the daemon runs but the radio has not completed a handshake yet: "
                                       f"{(st['radio'] or {}).get('error') or 'see station status'}")
        return Seen(RadioInfo.from_state(got[0]), "daemon", (st["radio"] or {}).get("queue"))
    try:
        with radio_session(cfg) as link:
            queue = link.ask_queue_status()
            return Seen(link.radio_info, link.port, list(queue) if queue else None)
    except RadioUnavailable as e:
        raise click.ClickException(str(e)) from None


def _bracelets(ctx: click.Context) -> list[tuple]:
    return [tuple(r) for r in open_db(ctx).execute(
        "SELECT b.node_num, b.label, b.public_key, n.hw_model FROM bracelets b "
        "LEFT JOIN nodes n ON n.num=b.node_num ORDER BY b.label").fetchall()]


def _profile(ctx: click.Context) -> profiles.MeshProfile:
    return profiles.MeshProfile.from_config(load_config(ctx))


def register(grp: click.Group) -> None:
    @grp.command("info")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def info_cmd(ctx: click.Context, as_json: bool) -> None:
        """What the station's radio is: firmware, hardware, region, preset, channels (never their
        keys), role, key fingerprint, excluded modules, node database, air time, queue."""
        seen = _seen(ctx)
        info = seen.info
        if as_json:
            emit_json({**info.as_status(), "queue": seen.queue, "source": seen.source})
            return
        chans = "; ".join(
            f"{c.index} {c.role} {c.name} (" + ("PUBLIC default key" if c.public else f"private, key {c.key_id}")
            + f", positions {c.precision_bits or 'off'}{' bits' if c.precision_bits else ''})" for c in info.channels)
        metrics = ("channel utilisation " + (f"{info.channel_utilization:.1f} %" if info.channel_utilization
                                               is not None else "unknown")
                   + ", its own transmissions " + (f"{info.air_util_tx:.2f} % of the last hour"
                                                   if info.air_util_tx is not None else "unknown"))
        rows = [
            ("radio", f"{info.node} " + ("as the daemon saw it at its last handshake" if seen.source == "daemon"
                                         else f"on {seen.source}") + f" ({when(info.at)})"),
            ("firmware", f"{info.firmware or '?'} on {info.hw_model}"),
            ("lora", f"region {info.region}, preset {info.preset} ({info.modem_preset}), hop limit {info.hop_limit}, "
                     f"transmitter {'on' if info.tx_enabled else 'OFF'}"),
            ("role", info.role),
            ("channels", chans or "none"),
            ("key", f"PKI on, fingerprint {info.key_fingerprint}" if info.pki else "no public key (PKI off)"),
            ("modules", "excluded from this build: " + (", ".join(info.excluded_modules) or "none")),
            ("nodedb", f"{info.nodedb_size} nodes, {len(info.keys)} with a key, {len(info.favorites)} favourites"),
            ("air", metrics),
            ("queue", f"{seen.queue[0]} free of {seen.queue[1]}" if seen.queue else "not reported yet"),
        ]
        for k, v in rows:
            click.echo(f"{k:<9} {safe(v)}")

    @grp.command("check")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def check_cmd(ctx: click.Context, as_json: bool) -> None:
        """Every difference from the mesh profile and every setup that cannot work, each with its
        remedy. Exits 1 when something must be done."""
        seen = _seen(ctx)
        found = setup_findings(seen.info, _bracelets(ctx)) + profiles.findings(_profile(ctx), seen.info)
        action = [f for f in found if f.level == "fail" or f.code.startswith("profile-")]
        if as_json:
            emit_json({"radio": seen.info.node, "action_needed": bool(action),
                       "findings": [dataclasses.asdict(f) for f in found]})
        else:
            click.echo(f"radio {seen.info.node}, firmware {seen.info.firmware or '?'} on {seen.info.hw_model}")
            if not _profile(ctx).region:
                click.echo("note: [mesh] region is not set, so the radio's region is not checked")
            for f in found:
                click.echo(f"{'PROBLEM' if f.level == 'fail' else 'warning'}: "
                           f"{safe(f.subject) + ': ' if f.subject else ''}{safe(f.text)}\n    remedy: {safe(f.remedy)}")
            click.echo("action needed" if action else ("nothing to do" if not found else "warnings only"))
        ctx.exit(1 if action else 0)

    @grp.command("configure")
    @click.option("--dry-run", is_flag=True, help="Show what would change, and change nothing.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @click.option("--by", default=None, help="Who makes the change, for the event log (default: your login).")
    @click.pass_context
    def configure_cmd(ctx: click.Context, dry_run: bool, yes: bool, by: str | None) -> None:
        """Set the station's radio to the mesh profile over admin messages: shows the difference,
        applies it, waits for the radio's reboot and reads everything back."""
        by = by or getpass.getuser()
        profile = _profile(ctx)
        cfg = load_config(ctx)
        db = open_db(ctx)
        running = queries.status(db)["daemon_running"]
        try:
            if running:
                _configure_through_daemon(ctx, db, profile, dry_run, yes, by)
            else:
                with radio_session(cfg) as link:
                    if not _show_plan(profile, link.radio_info, dry_run, yes):
                        return

                    def record(action: str, detail: str) -> None:
                        with db.conn:
                            log_event(db, None, link.radio_info.at, by, action, detail)
                    _report(configure.run_and_report(link, profile, by, record))
        except (RadioUnavailable, profiles.ProfileError) as e:
            raise click.ClickException(str(e)) from None


def _configure_through_daemon(ctx, db, profile, dry_run: bool, yes: bool, by: str) -> None:
    got = records.get_state(db, "radio_info")
    if not got:
        raise click.ClickException("the daemon runs but the radio has not completed a handshake yet")
    if not _show_plan(profile, RadioInfo.from_state(got[0]), dry_run, yes):
        return
    job = jobs.submit(db, "configure", {}, by)
    click.echo(f"the daemon holds the radio: job {job} handed to it; waiting for the radio's reboot ...")
    _report(jobs.wait(db, job, JOB_TIMEOUT_S))


def _show_plan(profile: profiles.MeshProfile, info: RadioInfo, dry_run: bool, yes: bool) -> bool:
    """Print the difference; True when it should be applied."""
    diffs = profile.differences(info)
    fixable = [d for d in diffs if d.configurable]
    for d in diffs:
        if not d.configurable:
            click.echo(f"cannot be configured: {d.field} is {d.have}, the profile says {d.want}: {d.remedy}")
    if not fixable:
        click.echo(f"the radio {info.node} already matches the mesh profile")
        return False
    click.echo(f"the radio {info.node} (firmware {info.firmware}) differs from the mesh profile:")
    for d in fixable:
        click.echo(f"  {configure.describe(d)}")
    for w in configure.warnings(fixable):
        click.echo(f"warning: {w}")
    if dry_run:
        click.echo("dry run: nothing was changed")
        return False
    if not yes and not click.confirm("apply these changes? the radio reboots and is away for about 10 s"):
        click.echo("nothing was changed")
        return False
    return True


def _report(result: dict) -> None:
    if result.get("error"):
        raise click.ClickException(f"configuration failed: {result['error']}")
    for d in result.get("applied", []):
        click.echo(f"applied: {d['field']} = {d['want']}")
    still = [d for d in result.get("remaining", []) if d["configurable"]]
    if still:
        raise click.ClickException("after the reboot the radio still differs: "
                                   + "; ".join(f"{d['field']} is {d['have']}" for d in still))
    click.echo(f"verified: the radio matches the mesh profile{' after its reboot' if result.get('rebooted') else ''}")



@contextlib.contextmanager
def port_lent(ctx: click.Context, by: str, seconds: float = LEND_S):
    """The station radio's port for this command (station/radio/lending.py)."""
    try:
        with lending.port_lent(open_db(ctx), by, seconds) as lent:
            if lent:
                click.echo("the daemon lent the radio's port; it takes it back when this command ends", err=True)
            yield
    except lending.LendRefused as e:
        raise click.ClickException(str(e)) from None


@contextlib.contextmanager
def _radio_in_hand(ctx: click.Context, by: str, seconds: float = LEND_S):
    with port_lent(ctx, by, seconds):
        try:
            with radio_session(load_config(ctx)) as link:
                yield link
        except RadioUnavailable as e:
            raise click.ClickException(str(e)) from None


def _passphrase(from_stdin: bool, confirm: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("passphrase", hide_input=True, confirmation_prompt=confirm)


def record_event(ctx: click.Context, by: str, action: str, detail: str) -> None:
    db = open_db(ctx)
    with db.conn:
        log_event(db, None, station_now(), by, action, detail)


def register_backup(grp: click.Group) -> None:
    @grp.command("backup")
    @click.argument("file", type=click.Path(dir_okay=False, writable=True))
    @click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from the first line of stdin.")
    @click.option("--by", default=None, help="Who makes the backup, for the event log (default: your login).")
    @click.pass_context
    def backup_cmd(ctx: click.Context, file: str, passphrase_stdin: bool, by: str | None) -> None:
        """Save the radio's whole configuration, channels and private key in FILE, sealed with a
        passphrase, so that a replacement radio can take over the station's identity."""
        by = by or getpass.getuser()
        path = Path(file)
        if path.exists():
            raise click.ClickException(f"{path} exists: choose a new file name (a backup is never overwritten)")
        passphrase = _passphrase(passphrase_stdin, confirm=True)
        if len(passphrase) < radio_backup.MIN_PASSPHRASE:
            raise click.ClickException(f"the passphrase must have at least {radio_backup.MIN_PASSPHRASE} characters")
        with _radio_in_hand(ctx, by) as link:
            info = link.radio_info
            try:
                b = radio_backup.read(RadioAdmin(link), info.node, info.firmware, info.hw_model,
                                      info.excluded_modules)
            except (LinkDown, AdminRefused) as e:
                raise click.ClickException(f"the radio did not give its configuration: {e}") from None
        sealed = radio_backup.seal(b, passphrase)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(sealed)
            f.flush()
            os.fsync(f.fileno())
        record_event(ctx, by, "radio backed up", Wording("{node}, key {key}, to {file}", node=info.node,
                                                         key=info.key_fingerprint, file=path.name))
        click.echo(f"radio {info.node} (key {info.key_fingerprint}) saved to {path}: "
                   "keep it and its passphrase apart, it holds the station's private key")

    @grp.command("restore")
    @click.argument("file", type=click.Path(dir_okay=False, exists=True))
    @click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from the first line of stdin.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @click.option("--by", default=None, help="Who restores, for the event log (default: your login).")
    @click.pass_context
    def restore_cmd(ctx: click.Context, file: str, passphrase_stdin: bool, yes: bool, by: str | None) -> None:
        """Put a backup made by `station radio backup` onto the connected radio: configuration,
        channels and private key; waits for its reboot and checks the key and channels took."""
        by = by or getpass.getuser()
        data = Path(file).read_bytes()
        try:
            header = radio_backup.header_of(data)
            b = radio_backup.unseal(data, _passphrase(passphrase_stdin, confirm=False))
        except radio_backup.BackupError as e:
            raise click.ClickException(str(e)) from None
        with _radio_in_hand(ctx, by) as link:
            info = link.radio_info
            click.echo(f"backup of {header['node']} (firmware {header['firmware']}, key {header['key_fingerprint']})"
                       f" onto the radio {info.node} (firmware {info.firmware}, key {info.key_fingerprint or 'none'})")
            if not yes and not click.confirm("replace this radio's configuration, channels and key? it reboots"):
                click.echo("nothing was changed")
                return
            started = time.time()
            try:
                radio_backup.write_to(RadioAdmin(link), b)
            except (LinkDown, AdminRefused) as e:
                raise click.ClickException(f"the radio did not take the backup: {e}") from None
            after = configure.wait_for_new_handshake(link, started, 90)
            if after is None:
                raise click.ClickException("the radio did not come back after its reboot: check it with "
                                           "station radio info")
        wanted = _channels_of(b)
        got = [(c.name, c.key_id) for c in after.channels]
        problems = []
        if after.key_fingerprint != header["key_fingerprint"]:
            problems.append(f"key is {after.key_fingerprint or 'none'}, the backup's {header['key_fingerprint']}")
        if got != wanted:
            problems.append(f"channels are {got}, the backup's {wanted}")
        if problems:
            record_event(ctx, by, "radio restore failed", Wording("{node} from {source}: {problems}", node=after.node,
                                                                    source=header["node"], problems="; ".join(problems)))
            raise click.ClickException("after the reboot the radio differs from the backup: " + "; ".join(problems))
        record_event(ctx, by, "radio restored", Wording("{node} now holds {source}'s key {key} and configuration",
                                                     node=after.node, source=header["node"], key=after.key_fingerprint))
        click.echo(f"verified: the radio {after.node} holds the key {after.key_fingerprint} and the channels "
                   "of the backup")


def _channels_of(b: radio_backup.RadioBackup) -> list[tuple[str, str]]:
    """(name, key id) of each channel in use, as the radio's handshake will show them."""
    lora = config_pb2.Config.LoRaConfig.FromString(b.config.get("lora", b""))
    preset = PRESET_NAMES.get(lora.modem_preset, "Custom") if lora.use_preset else "Custom"
    out = []
    for data in b.channels:
        ch = channel_pb2.Channel.FromString(data)
        if ch.role == channel_pb2.Channel.Role.DISABLED:
            continue
        out.append((ch.settings.name or preset, key_id(ch.settings.psk)))
    return out
