"""install.sh for real: a system install into a throwaway root (a folder with its own user
database), checked from inside a private mount namespace where that folder's /etc/station,
/opt/station and /var/lib/station are the real paths, then `station doctor` as the station user."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def need_root_tools():
    missing = [t for t in ("unshare", "useradd", "runuser", "systemctl") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        why = "not root" if os.geteuid() != 0 else f"missing {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(f"the install test needs root and {missing or 'its tools'} in CI ({why})")
        pytest.skip(why)


@pytest.fixture
def tmp_root():
    # Not under pytest's tmp_path: that is mode 0700, and the station user must reach the venv.
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="station-install-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fresh_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for d in (root, root / "etc"):       # as / and /etc are, whatever the umask the tests run with
        d.chmod(0o755)
    for f in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        if Path("/etc", f).exists():
            shutil.copy(Path("/etc", f), root / "etc" / f)
    return root


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "install.sh"), "--root", str(root), *args], capture_output=True,
                          text=True, timeout=600)


def inside(root: Path, command: str) -> subprocess.CompletedProcess:
    script = "set -e\n" + "".join(
        f"mkdir -p {d} 2>/dev/null || true; mount --bind {root}{d} {d}\n"
        for d in ("/etc/station", "/var/lib/station", "/opt/station")) + \
        f"mount --bind {root}/etc/passwd /etc/passwd; mount --bind {root}/etc/group /etc/group\n{command}\n"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                          capture_output=True, text=True, timeout=120)


def test_dry_run_prints_every_action_and_changes_nothing(tmp_root):
    tmp_path = tmp_root
    need_root_tools()
    root = fresh_root(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    result = install(root, "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for action in ("+ useradd --system", "+ install -d -m 0750 " + str(root / "var/lib/station"),
                   "venv", "+ write " + str(root / "etc/station/station.toml") + " (mode 0640, root:station)",
                   "+ install -m 0644 " + str(REPO / "hardware/udev/99-station.rules"),
                   f"+ systemctl --root={root} enable station.service station-console.service station-backup.timer"):
        assert action in out, action
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


@pytest.mark.slow
def test_system_install_upgrade_doctor_uninstall_and_purge(tmp_root):
    tmp_path = tmp_root
    need_root_tools()
    root = fresh_root(tmp_path)
    first = install(root)
    assert first.returncode == 0, first.stdout + first.stderr
    cfg = root / "etc/station/station.toml"
    assert oct(cfg.stat().st_mode & 0o777) == "0o640"
    text = cfg.read_text()
    assert 'port = "/dev/meshtastic"' in text and 'database = "/var/lib/station/station.db"' in text
    assert (root / "etc/systemd/system/multi-user.target.wants/station.service").is_symlink()
    assert (root / "etc/systemd/system/timers.target.wants/station-backup.timer").is_symlink()
    assert (root / "etc/systemd/system/multi-user.target.wants/station-console.service").is_symlink()
    assert (root / "etc/udev/rules.d/99-station.rules").exists()
    # HTTPS for the office network: nginx's site, a certificate with a private key, the config pointing at it.
    assert (root / "etc/nginx/sites-enabled/station-console").resolve() == \
        (root / "etc/nginx/sites-available/station-console").resolve()
    assert oct((root / "etc/station/tls/console.key").stat().st_mode & 0o777) == "0o600"
    assert 'certificate = "/etc/station/tls/console.crt"' in text and "secure_cookies = true" in text
    station_line = next(line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("station:"))
    groups = (root / "etc/group").read_text()
    assert [g for g in groups.splitlines() if g.startswith(("dialout:", "gpio:")) and "station" in g.split(":")[3]]
    assert (root / "var/lib/station").stat().st_uid == int(station_line.split(":")[2])

    # As the station user, where the installed paths are the real ones: the schema is created,
    # and the doctor runs and names what is missing on this machine (no radio).
    result = inside(root, "runuser -u station -- /opt/station/venv/bin/station --config /etc/station/station.toml"
                          " status >/dev/null; runuser -u station -- /opt/station/venv/bin/station"
                          " --config /etc/station/station.toml doctor --json || true")
    assert '"name": "groups"' in result.stdout and '"message": "user station is in dialout and gpio"' in result.stdout
    assert "radio port /dev/meshtastic is not present" in result.stdout, result.stdout + result.stderr
    assert (root / "var/lib/station/station.db").exists()

    # A re-run upgrades in place and keeps the office's config and data.
    cfg.write_text(text + "\n# edited by the office\n")
    again = install(root)
    assert again.returncode == 0 and f"keeping the existing {cfg}" in again.stdout
    assert cfg.read_text().endswith("# edited by the office\n")

    gone = install(root, "--uninstall")
    assert gone.returncode == 0 and not (root / "opt/station").exists()
    assert not (root / "etc/nginx/sites-enabled/station-console").exists()
    assert (root / "etc/station/tls/console.key").exists()      # kept: a re-install keeps the fingerprint
    assert (root / "var/lib/station/station.db").exists() and cfg.exists()
    assert not (root / "etc/systemd/system/station.service").exists()
    purged = install(root, "--uninstall", "--purge")
    assert purged.returncode == 0 and not (root / "var/lib/station").exists() and not cfg.exists()
    assert "station:" not in (root / "etc/passwd").read_text()


def test_system_install_refuses_without_root():
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root to become another user")
    result = subprocess.run(["runuser", "-u", "nobody", "--", "bash", str(REPO / "install.sh")], capture_output=True,
                            text=True)
    assert result.returncode == 1 and "a system install needs root" in result.stderr
