"""Someone with another account on the station (or a service broken into) must not read what the
station keeps: wearers' names and tracks, PIN hashes, the console's key, the mesh key."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from click.testing import CliRunner

from station import at_rest, doctor
from station import config as configmod
from station.cli import cli


def write_config(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[radio]\nport = "/dev/absent-radio"\n[storage]\ndatabase = "{tmp_path / "data" / "s.db"}"\n'
                   '[gpio]\nenabled = false\n')
    os.chmod(cfg, 0o640)
    return cfg


def test_what_a_command_creates_is_kept_from_other_users(tmp_path):
    old = os.umask(0o022)            # a shell's usual umask: the station must not depend on it
    try:
        cfg = write_config(tmp_path)
        out = subprocess.run([sys.executable, "-m", "station", "--config", str(cfg), "alerts", "list"],
                             capture_output=True, text=True, timeout=60)
    finally:
        os.umask(old)
    assert out.returncode == 0, out.stderr
    made = [p for p in (tmp_path / "data").iterdir()]
    assert made and all(stat.S_IMODE(p.stat().st_mode) & 0o007 == 0 for p in made), \
        {p.name: oct(p.stat().st_mode) for p in made}


def test_the_daemon_refuses_to_start_with_a_database_every_user_can_read(tmp_path):
    cfg = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "s.db"
    db.write_bytes(b"")
    os.chmod(db, 0o644)
    out = CliRunner().invoke(cli, ["--config", str(cfg), "run"])
    assert out.exit_code == 1
    assert f"other users of this machine can read {db} (mode 644)" in out.output
    assert f"fix with: chmod o-rwx {db}" in out.output
    checks = {c.name: c for c in doctor.run(str(cfg))}
    assert checks["files at rest"].status == doctor.FAIL
    assert checks["files at rest"].remedy.startswith(f"chmod o-rwx {db}")   # SQLite gives -wal/-shm its mode
    for path, _ in at_rest.exposed(configmod.load(cfg)):
        os.chmod(path, 0o640)                                                # the remedy, applied
    assert at_rest.exposed(configmod.load(cfg)) == []


def test_a_config_file_every_user_can_read_is_refused_too(tmp_path):
    cfg = write_config(tmp_path)
    os.chmod(cfg, 0o666)
    found = at_rest.exposed(configmod.load(cfg))
    assert found == [(cfg, 0o666)]
