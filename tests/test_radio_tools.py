"""A technician checks and configures the station's radio against the office's mesh profile with
`station radio info | check | configure`, without knowing the meshtastic CLI: what they see,
what changes on the radio (the virtual radio answering admin messages as firmware does), what
the event log keeps, and what an onlooker must never see (the channel key)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from click.testing import CliRunner

from station.cli import cli
from station.radio import jobs
from station.radio.channels import key_id
from station.radio.link import LinkSettings, RadioLink
from station.radio.profile import MeshProfile
from station.radio.sim import SimRadio
from station.storage import db as dbmod
from station.storage.migrations import migrate

from .conftest import wait_until

PROFILE = {"region": "EU_868", "channel_name": "Kibera", "position_precision": 16, "hop_limit": 4}


def write_config(tmp_path, port: str, database, mesh: dict | None = None) -> str:
    path = tmp_path / "station.toml"
    mesh_lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in (mesh or PROFILE).items())
    path.write_text(f'[storage]\ndatabase = "{database}"\n[gpio]\nenabled = false\n'
                    f'[radio]\nport = "{port}"\nhandshake_timeout_s = 5.0\n[mesh]\n{mesh_lines}')
    return str(path)


@pytest.fixture
def bench_radio(tmp_path):
    """A radio on the technician's bench: plugged in, no daemon running."""
    made = []

    def make(firmware: str = "2.7.26", **options) -> SimRadio:
        sim = SimRadio("idle", speed=0, pty=str(tmp_path / f"radio{len(made)}"), firmware=firmware,
                       reboot_scale=0.05, **options).start(play=False)
        made.append(sim)
        return sim
    yield make
    for sim in made:
        sim.stop()


def run(config: str, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["--config", config, "radio", *args], input=input)


@pytest.mark.parametrize("firmware", ["2.6.11", "2.7.3", "2.7.26", "2.8"])
def test_technician_sees_what_the_radio_is_without_its_channel_key(tmp_path, bench_radio, firmware):
    sim = bench_radio(firmware)
    config = write_config(tmp_path, sim.port, tmp_path / "station.db")
    result = run(config, "info")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"firmware  {sim.radio.profile.version} on HELTEC_V3" in out
    assert "region EU_868, preset LongFast (LONG_FAST), hop limit 3, transmitter on" in out
    assert "0 PRIMARY Natalia (private, key " in out and "1 SECONDARY LongFast (PUBLIC default key" in out
    assert "excluded from this build: AMBIENTLIGHTING_CONFIG" in out
    assert "channel utilisation 3.5 %" in out and "queue     16 free of 16" in out
    info = json.loads(run(config, "info", "--json").output)
    assert info["firmware"] == sim.radio.profile.version and info["role"] == "CLIENT"
    assert info["key_fingerprint"] and info["nodedb_size"] >= 1 and info["queue"] == [16, 16]
    office_key = sim.radio.channels[0].settings.psk
    for text in (out, json.dumps(info)):
        assert base64.b64encode(office_key).decode() not in text and office_key.hex() not in text


def test_a_radio_off_profile_is_named_field_by_field_and_check_exits_nonzero(tmp_path, bench_radio):
    sim = bench_radio()
    config = write_config(tmp_path, sim.port, tmp_path / "station.db", {**PROFILE, "role": "CLIENT_BASE"})
    result = run(config, "check")
    assert result.exit_code == 1, result.output
    for line in ("channel.0.name is Natalia; the mesh profile says Kibera",
                 "channel.0.psk is key", "lora.hop_limit is 3; the mesh profile says 4",
                 "device.role is CLIENT; the mesh profile says CLIENT_BASE",
                 "channel.0.position_precision is 32; the mesh profile says 16"):
        assert line in result.output
    assert result.output.count("remedy: station radio configure") == 5
    assert result.output.rstrip().endswith("action needed")
    # Checking draws no key: only configure does.
    assert not (tmp_path / "mesh.psk").exists()


def test_dry_run_shows_the_difference_and_changes_nothing(tmp_path, bench_radio):
    sim = bench_radio()
    boots = sim.radio.counters.boots
    config = write_config(tmp_path, sim.port, tmp_path / "station.db")
    result = run(config, "configure", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "channel.0.name: Natalia -> Kibera" in result.output
    assert "lora.hop_limit: 3 -> 4" in result.output
    assert "will not be heard until they are set to the same profile" in result.output
    assert "dry run: nothing was changed" in result.output
    assert sim.radio.admin.changes == [] and sim.radio.counters.boots == boots


@pytest.mark.slow
def test_configure_sets_the_radio_verifies_after_its_reboot_and_logs_who_did_it(tmp_path, bench_radio):
    sim = bench_radio()
    boots = sim.radio.counters.boots
    db_path = tmp_path / "station.db"
    config = write_config(tmp_path, sim.port, db_path)
    result = run(config, "configure", "--yes", "--by", "tech-ana")
    assert result.exit_code == 0, result.output
    assert "verified: the radio matches the mesh profile after its reboot" in result.output
    key_file = tmp_path / "mesh.psk"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    key = base64.b64decode(key_file.read_text())
    assert len(key) == 32 and key not in (b"\x01",)
    primary = sim.radio.channels[0].settings
    assert (primary.name, primary.psk, primary.module_settings.position_precision) == ("Kibera", key, 16)
    assert sim.radio.config.lora.hop_limit == 4 and sim.radio.counters.boots == boots + 1
    assert base64.b64encode(key).decode() not in result.output
    # The event log says who changed what, with the key by its id only.
    db = dbmod.connect(db_path)
    (actor, action, detail), = db.execute("SELECT actor, action, detail FROM events").fetchall()
    assert (actor, action) == ("tech-ana", "radio configured")
    assert "channel.0.name: Natalia -> Kibera" in detail and f"key {key_id(key)}" in detail
    assert base64.b64encode(key).decode() not in detail
    # Run again: nothing to do, and the radio is left alone.
    again = run(config, "configure", "--yes")
    assert "already matches the mesh profile" in again.output and sim.radio.counters.boots == boots + 1
    assert run(config, "check").exit_code == 0


def test_configure_asks_before_it_reboots_the_radio(tmp_path, bench_radio):
    sim = bench_radio()
    config = write_config(tmp_path, sim.port, tmp_path / "station.db")
    result = run(config, "configure", input="n\n")
    assert "apply these changes?" in result.output and "nothing was changed" in result.output
    assert sim.radio.admin.changes == []


def test_a_channel_key_file_others_can_read_is_refused(tmp_path, bench_radio):
    sim = bench_radio()
    config = write_config(tmp_path, sim.port, tmp_path / "station.db")
    key_file = tmp_path / "mesh.psk"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    os.chmod(key_file, 0o644)
    result = run(config, "configure", "--yes")
    assert result.exit_code != 0
    assert "can be read by other users" in result.output and "chmod 600" in result.output
    assert sim.radio.admin.changes == []
    check = run(config, "check")
    assert check.exit_code == 1 and "can be read by other users" in check.output


def test_a_radio_that_ignores_admin_messages_fails_with_a_reason_instead_of_hanging(tmp_path, bench_radio):
    from station.radio import configure
    sim = bench_radio()
    sim.radio.config.security.is_managed = True       # AdminModule: local admin ignored
    boots = sim.radio.counters.boots
    cfg_path = write_config(tmp_path, sim.port, tmp_path / "station.db")
    from station import config as configmod
    cfg = configmod.load(cfg_path)

    class Sink:
        def on_packet(self, *a): pass
        def on_bad_frame(self, *a): pass
        def on_log_line(self, *a): pass
    link = RadioLink(sim.port, Sink(), LinkSettings(handshake_timeout_s=5)).start()
    try:
        assert link.wait_connected(10)
        wait_until(lambda: link.radio_info is not None, what="the handshake")
        events = []
        result = configure.run_and_report(link, MeshProfile.from_config(cfg), "tech-ana",
                                          lambda action, detail: events.append((action, detail)),
                                          admin_timeout_s=0.5)
    finally:
        link.stop()
    assert result["ok"] is False and "did not answer an admin request" in result["error"]
    assert events == [("radio configuration failed", "by tech-ana: " + result["error"])]
    assert sim.radio.counters.boots == boots


@pytest.mark.slow          # seconds of real timing; the quick loop leaves it to the full run
def test_configure_goes_through_the_running_daemon_which_keeps_the_port(tmp_path, harness):
    h = harness("idle", "pty", mesh=PROFILE)
    wait_until(lambda: h.count("SELECT COUNT(*) FROM station_state WHERE key='radio_info'") == 1,
               what="the radio's handshake")
    config = write_config(tmp_path, h.sim.port, h.cfg.database_path)
    wait_until(lambda: '"daemon_running": true' in CliRunner().invoke(cli, ["--config", config, "status", "--json"])
               .output, what="the daemon to report itself running")
    handshakes = h.sim.radio.handshakes
    result = run(config, "configure", "--yes", "--by", "tech-bo")
    assert result.exit_code == 0, result.output
    assert "the daemon holds the radio: job 1" in result.output and "verified" in result.output
    assert h.sim.radio.channels[0].settings.name == "Kibera"
    # One owner: the new handshakes are the daemon's after the reboot (the library asks again on
    # `rebooted`, and the link reconnects); a command opening the port itself would add its own.
    assert handshakes < h.sim.radio.handshakes <= handshakes + 2 and h.station.link.connected
    assert h.rows("SELECT state, requested_by FROM radio_jobs")[0][:] == ("done", "tech-bo")
    assert h.count("SELECT COUNT(*) FROM events WHERE actor='tech-bo' AND action='radio configured'") == 1
    # What the daemon recorded after the reboot is what `check` reads: nothing left to do.
    wait_until(lambda: run(config, "check").exit_code == 0, what="check to read the new handshake")


def test_a_job_the_daemon_never_picks_up_is_withdrawn_and_one_cut_short_by_a_restart_is_failed(tmp_path):
    db = dbmod.connect(tmp_path / "station.db")
    migrate(db)
    job = jobs.submit(db, "configure", {}, "tech-ana")
    result = jobs.wait(db, job, timeout=0.3)
    assert result["state"] == "withdrawn" and "never picked it up" in result["error"]
    running = jobs.submit(db, "configure", {}, "tech-bo")
    with db.conn:
        db.execute("UPDATE radio_jobs SET state='running' WHERE id=?", [running])
    from station.storage.writer import Writer
    writer = Writer(tmp_path / "station.db").start()
    jobs.JobRunner(db, writer, {}).abandon_running()
    writer.stop()
    state, result = db.execute("SELECT state, result FROM radio_jobs WHERE id=?", [running]).fetchone()
    assert state == "failed" and "stopped while the job was running" in json.loads(result)["error"]


def test_without_a_radio_the_technician_is_told_what_to_plug_in(tmp_path):
    config = write_config(tmp_path, str(tmp_path / "ttyUSB9"), tmp_path / "station.db")
    result = run(config, "info")
    assert result.exit_code == 1
    assert "is not present: is the radio plugged in?" in result.output


PASS = "correct horse battery staple\n"


@pytest.mark.slow
def test_a_replacement_radio_restored_from_a_backup_keeps_the_stations_key_and_channels(tmp_path, bench_radio):
    old = bench_radio()
    config = write_config(tmp_path, old.port, tmp_path / "station.db")
    assert run(config, "configure", "--yes").exit_code == 0
    before = json.loads(run(config, "info", "--json").output)
    backup = tmp_path / "radio.backup"
    made = run(config, "backup", str(backup), "--passphrase-stdin", "--by", "tech-ana", input=PASS)
    assert made.exit_code == 0, made.output
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    sealed = backup.read_bytes()
    # Whoever takes the file without the passphrase learns neither key.
    for secret in (old.radio.keys.private, old.radio.channels[0].settings.psk):
        assert base64.b64encode(secret) not in sealed and secret.hex().encode() not in sealed
    # The office's radio dies; a new one (another node number, its own key, the public channel).
    old.stop()
    new = bench_radio(node_num=0x5A7A7200)
    config = write_config(tmp_path, new.port, tmp_path / "station.db")
    fresh = json.loads(run(config, "info", "--json").output)
    assert fresh["key_fingerprint"] != before["key_fingerprint"]
    restored = run(config, "restore", str(backup), "--passphrase-stdin", "--yes", "--by", "tech-ana", input=PASS)
    assert restored.exit_code == 0, restored.output
    assert f"holds the key {before['key_fingerprint']}" in restored.output
    after = json.loads(run(config, "info", "--json").output)
    assert after["node"] == "!5a7a7200"                       # its own hardware's number
    for same in ("key_fingerprint", "channels", "region", "preset", "hop_limit", "role"):
        assert after[same] == before[same], same
    assert new.radio.keys.private == old.radio.keys.private
    assert run(config, "check").exit_code == 0
    actions = [r[0] for r in dbmod.connect(tmp_path / "station.db").execute(
        "SELECT action FROM events WHERE actor='tech-ana' ORDER BY id")]
    assert actions == ["radio backed up", "radio restored"]


@pytest.mark.slow
@pytest.mark.parametrize("tamper, message", [
    (lambda d: d, "wrong passphrase"),
    (lambda d: d.replace(b'"node": "!5a7a7100"', b'"node": "!00000bad"'), "wrong passphrase, or the file was altered"),
    (lambda d: b"not a backup", "not a station radio backup"),
])
def test_a_wrong_passphrase_or_an_altered_backup_changes_nothing(tmp_path, bench_radio, tamper, message):
    sim = bench_radio()
    config = write_config(tmp_path, sim.port, tmp_path / "station.db")
    backup = tmp_path / "radio.backup"
    assert run(config, "backup", str(backup), "--passphrase-stdin", input=PASS).exit_code == 0
    backup.write_bytes(tamper(backup.read_bytes()))
    changes = list(sim.radio.admin.changes)
    result = run(config, "restore", str(backup), "--passphrase-stdin", "--yes", input="not the passphrase\n"
                 if message == "wrong passphrase" else PASS)
    assert result.exit_code == 1 and message in result.output
    assert sim.radio.admin.changes == changes


def test_a_short_passphrase_and_an_existing_file_are_refused_before_the_radio_is_touched(tmp_path, bench_radio):
    sim = bench_radio()
    config = write_config(tmp_path, sim.port, tmp_path / "station.db")
    short = run(config, "backup", str(tmp_path / "b"), "--passphrase-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    (tmp_path / "b").write_text("an older backup")
    again = run(config, "backup", str(tmp_path / "b"), "--passphrase-stdin", input=PASS)
    assert again.exit_code == 1 and "never overwritten" in again.output
    assert (tmp_path / "b").read_text() == "an older backup"


@pytest.mark.slow
def test_while_the_daemon_runs_a_backup_borrows_the_port_and_the_daemon_takes_it_back(tmp_path, harness):
    h = harness("idle", "pty", mesh=PROFILE)
    config = write_config(tmp_path, h.sim.port, h.cfg.database_path)
    wait_until(lambda: '"daemon_running": true' in CliRunner().invoke(cli, ["--config", config, "status", "--json"])
               .output, what="the daemon to report itself running")
    handshakes = h.sim.radio.handshakes
    made = run(config, "backup", str(tmp_path / "radio.backup"), "--passphrase-stdin", input=PASS)
    assert made.exit_code == 0, made.output
    assert "the daemon lent the radio's port" in made.output
    # The command's own handshake, then the daemon's again: one owner at a time.
    wait_until(lambda: h.station.link.connected and h.sim.radio.handshakes == handshakes + 2,
               what="the daemon to take the port back")
    assert [r[0] for r in h.rows("SELECT kind FROM radio_jobs ORDER BY id")] == ["lend", "take_back"]
