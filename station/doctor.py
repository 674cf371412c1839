"""`station doctor`: checks what makes a station work, and says what to do about each problem.

Each check returns a `Check` with a status: ok, warn (worth knowing, works anyway), fail (needs
action) or unknown (cannot be told on this machine). Checks never change anything.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from station import at_rest, pins, registry
from station.retention import Policy
from station import config as configmod
from station import queries
from station.radio.ports import holders_of, parse_tcp
from station.radio.profile import MeshProfile
from station.storage import backup as bk
from station.storage import db as dbmod

OK, WARN, FAIL, UNKNOWN = "ok", "warn", "fail", "unknown"
MIN_FREE_MB, LOW_FREE_MB = 100, 1024
BACKUP_MAX_AGE_H = 36


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    message: str
    remedy: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def run(config_path: str | None, *, service_user: str = "station", systemctl: str | None = None) -> list[Check]:
    checks: list[Check] = []
    try:
        cfg = configmod.load(config_path)
    except configmod.ConfigError as e:
        return [Check("config", FAIL, str(e), "fix the key named above (station.example.toml documents every key)")]
    checks.append(Check("config", OK, f"valid ({cfg.source or 'built-in defaults'})"))
    checks.append(config_permissions(cfg))
    checks.append(files_at_rest(cfg))
    checks += database(cfg)
    status = _status(cfg)
    checks.append(daemon(status))
    checks.append(radio(cfg, status))
    checks += radio_setup(status)
    checks.append(groups(service_user))
    checks.append(gpio(cfg))
    checks.append(gps(cfg, status))
    checks.append(backups(cfg))
    checks.append(pin_key(cfg))
    checks.append(retention_check(cfg, status))
    checks.append(relay_credentials(cfg))
    checks.append(services(systemctl))
    checks.append(console_tls(cfg))
    checks.append(undervoltage())
    return checks


def console_tls(cfg) -> Check:
    from station import certificate
    c = cfg.console
    if not c["certificate"]:
        if certificate.loopback(c["host"]):
            return Check("console HTTPS", WARN, f"no certificate configured: the console is only on this machine "
                                                f"(http://{c['host']}:{c['port']}/)",
                         "sudo ./install.sh sets up HTTPS for the office network ([console] certificate)")
        return Check("console HTTPS", FAIL, f"the console is served in plain HTTP on {c['host']}: passwords and alerts "
                                            "cross the office network in clear",
                     "keep [console] host = \"127.0.0.1\" and serve the LAN through nginx (sudo ./install.sh)")
    try:
        return Check("console HTTPS", OK, f"certificate {c['certificate']}, SHA-256 {certificate.fingerprint(c['certificate'])} "
                                          "(coordinators compare this with what their browser shows)")
    except certificate.CertificateError as e:
        return Check("console HTTPS", FAIL, str(e), "sudo ./install.sh makes it again")


def _status(cfg) -> dict | None:
    if not cfg.database_path.exists():
        return None
    try:
        return queries.status(dbmod.connect(cfg.database_path, create=False), MeshProfile.from_config(cfg))
    except Exception:
        return None


def config_permissions(cfg) -> Check:
    if cfg.source is None:
        return Check("config permissions", OK, "no config file: built-in defaults")
    mode = stat.S_IMODE(cfg.source.stat().st_mode)
    # Readable by every user: "files at rest" says so, with the database and keys.
    if mode & stat.S_IWOTH or mode & stat.S_IWGRP:
        return Check("config permissions", FAIL, f"{cfg.source} is writable by others (mode {mode:o})",
                     f"sudo chmod 640 {cfg.source}")
    return Check("config permissions", OK, f"{cfg.source} mode {mode:o}")


def files_at_rest(cfg) -> Check:
    found = at_rest.exposed(cfg)
    if found:
        return Check("files at rest", FAIL, "readable or writable by every user of this machine: " +
                     ", ".join(f"{p} (mode {m:o})" for p, m in found), at_rest.remedy(found))
    return Check("files at rest", OK, "database, keys and config are kept from other users")


def database(cfg) -> list[Check]:
    path = cfg.database_path
    out = []
    if not path.exists():
        out.append(Check("database", WARN, f"{path} does not exist yet", "start the station once: it is created"))
    else:
        try:
            db = dbmod.connect(path, create=False)
            try:
                result = dbmod.quick_check(db)
            except sqlite3.DatabaseError as e:
                raise dbmod.unusable(path, e) from None
            finally:
                db.conn.close()
            out.append(Check("database", OK if result == "ok" else FAIL, f"{path}: quick_check {result}",
                             "" if result == "ok" else bk.restore_hint(cfg.backup["dir"])))
        except dbmod.StorageError as e:
            out.append(Check("database", FAIL, str(e), bk.restore_hint(cfg.backup["dir"]) if e.damaged
                             else "check the path, its owner (the station user) and the medium (dmesg)"))
        if not os.access(path, os.W_OK):
            out.append(Check("database permissions", WARN, f"{path} is not writable by this user",
                             "run the doctor as the station user to check its access (sudo -u station station doctor)"))
    folder = path.parent if path.parent.exists() else Path("/")
    free_mb = shutil.disk_usage(folder).free / 2**20
    level = FAIL if free_mb < MIN_FREE_MB else WARN if free_mb < LOW_FREE_MB else OK
    out.append(Check("disk space", level, f"{free_mb:.0f} MiB free for the database",
                     "" if level == OK else "free space or move [storage] database to a larger medium"))
    return out


def daemon(status: dict | None) -> Check:
    if status is None or status["status_age_s"] is None:
        return Check("daemon", WARN, "no status recorded: the daemon has not run with this database",
                     "sudo systemctl start station")
    if status["daemon_running"]:
        d = status.get("database") or {}
        if d.get("state") == "unavailable":
            # Running, and must keep running: a restart now would lose what it holds in memory
            # beyond the spool. Mend the cause instead.
            return Check("daemon", FAIL, f"running (pid {(status['station'] or {}).get('pid')}) but the database is "
                         f"unavailable for {d.get('for_s')} s: {d.get('why')}; {d.get('held_changes')} changes held",
                         "do NOT restart the station: free disk space or stop the process holding the lock; "
                         "what it holds is stored as soon as the database takes it")
        return Check("daemon", OK, f"running (pid {(status['station'] or {}).get('pid')})")
    return Check("daemon", FAIL, f"not running (last status {status['status_age_s']} s ago)",
                 "sudo systemctl start station; journalctl -u station says why it stopped")


def radio(cfg, status: dict | None) -> Check:
    port = cfg.radio["port"]
    running = bool(status and status.get("daemon_running"))
    # A dead daemon's last word is history, not the radio's state now.
    st = ((status or {}).get("radio") or {}) if running else {}
    if st.get("virtual"):
        from station.radio.finder import RadioFinder
        found = RadioFinder(port).find() if port == "auto" else None
        if found and found != "auto":
            return Check("radio", WARN, f"the VIRTUAL radio is used although a radio is at {found}: it is taken "
                         "within seconds", "if it stays so, journalctl -u station says why")
        return Check("radio", WARN, f"port {port!r}: the VIRTUAL radio is used (alerts are drills only)",
                     'plug in the radio (it is taken at once) or set [radio] port')
    if port == "sim":
        return Check("radio", WARN, "port 'sim': the VIRTUAL radio is configured (alerts are drills only)",
                     'set [radio] port = "auto"')
    if parse_tcp(port):
        if not running:
            return Check("radio", UNKNOWN, f"{port}: not known while the daemon is not running")
        return Check("radio", OK if st.get("status") == "connected" else WARN,
                     f"{port}: {st.get('status', 'unknown')} {st.get('error', '')}".strip())
    if port == "auto":
        from station.radio.finder import RadioFinder
        path = RadioFinder("auto").find()
        if path is None:
            return Check("radio", FAIL, "no radio plugged in (no /dev/meshtastic, no USB serial port of a known "
                         "radio)", "plug the radio in; `ls /dev/serial/by-id/` lists serial devices; see hardware/bom.md")
    else:
        path = st.get("port") or port
    if not os.path.exists(path):
        return Check("radio", FAIL, f"radio port {path} is not present",
                     "plug the radio in; `ls /dev/serial/by-id/` lists serial devices; see hardware/bom.md")
    daemon_pid = str(((status or {}).get("station") or {}).get("pid", ""))
    holders = [h for h in holders_of(path) if not (daemon_pid and h.endswith(f"(pid {daemon_pid})"))]
    if holders:
        return Check("radio", FAIL, f"radio port {path} is held by {', '.join(holders)}",
                     "close that program (another station, the meshtastic CLI, a flasher)")
    if not running:
        return Check("radio", WARN, f"{path} present; the link is not known while the daemon is not running",
                     "sudo systemctl start station")
    if st.get("status") != "connected":
        return Check("radio", WARN, f"{path} present, link {st.get('status')}: {st.get('error', '')}",
                     "check the cable and the radio's power; journalctl -u station")
    return Check("radio", OK, f"{path} present, link connected")


def radio_setup(status: dict | None) -> list[Check]:
    """What the radio said at its last handshake, against the registered bracelets
    (station/radio/info.py findings): each combination that cannot work, with its remedy."""
    info = (status or {}).get("radio_info")
    if not info:
        return [Check("radio setup", UNKNOWN, "the radio has not completed a handshake with this database yet",
                      "start the station with the radio plugged in")]
    findings = (status or {}).get("radio_findings") or []
    if not findings:
        primary = (info.get("primary") or {}).get("name", "?")
        return [Check("radio setup", OK, f"firmware {info['firmware']} on {info['hw_model']}, {info['region']} "
                                         f"{info['preset']}, private primary channel {primary}, every bracelet's key")]
    return [Check(f"radio setup: {f['code']}", FAIL if f["level"] == "fail" else WARN, f["text"], f["remedy"])
            for f in findings]


def _membership(user: str) -> set[str] | None:
    """The user's groups (primary and supplementary), or None when there is no such user."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    names.add(grp.getgrgid(entry.pw_gid).gr_name)
    return names


def groups(user: str, membership=_membership) -> Check:
    names = membership(user)
    if names is None:
        return Check("groups", UNKNOWN, f"no {user!r} user on this machine (a development machine?)",
                     "sudo ./install.sh creates it")
    missing = [g for g in ("dialout", "gpio") if g not in names]
    if missing:
        return Check("groups", FAIL, f"user {user} is not in {', '.join(missing)}",
                     " && ".join(f"sudo adduser {user} {g}" for g in missing))
    return Check("groups", OK, f"user {user} is in dialout and gpio")


def gpio(cfg) -> Check:
    present = [p for p in ("/dev/gpiochip0", "/dev/gpiomem") if os.path.exists(p)]
    enabled = cfg.gpio["enabled"]
    if enabled is False:
        return Check("gpio", OK, "disabled in the config")
    if present:
        return Check("gpio", OK, f"{', '.join(present)} present")
    level = FAIL if enabled is True else WARN
    return Check("gpio", level, "no GPIO on this machine: no buzzer, LEDs or button",
                 "on a Raspberry Pi this is a kernel problem; elsewhere set [gpio] enabled = false")


def gps(cfg, status: dict | None) -> Check:
    if not cfg.gps["port"]:
        return Check("gps", WARN, "no GPS configured: after a power cut without internet the clock may be wrong",
                     "add a GPS and set [gps] port (hardware/bom.md)")
    if not os.path.exists(cfg.gps["port"]):
        return Check("gps", FAIL, f"GPS port {cfg.gps['port']} is not present", "check the GPS cable or UART settings")
    g = (status or {}).get("gps") or {}
    clock = (status or {}).get("clock") or {}
    if not g.get("fix"):
        return Check("gps", WARN, f"no fix yet ({g.get('sats') or 0} satellites)",
                     "put the antenna where it sees the sky")
    return Check("gps", OK, f"fix {g['fix']['time']}, {g.get('sats')} satellites; clock from {clock.get('source')}")


def backups(cfg) -> Check:
    folder = cfg.backup["dir"]
    if not folder:
        return Check("backups", WARN, "no backup folder configured", "set [backup] dir to a USB stick")
    if not cfg.backup["recipients"] and not cfg.backup["plaintext"]:
        return Check("backups", FAIL, "no [backup] recipients: every backup is refused",
                     "station backup-keygen FILE on a medium that leaves the station; add its public key "
                     "to [backup] recipients")
    found = bk.backups(Path(folder)) if Path(folder).is_dir() else []
    if not found:
        return Check("backups", FAIL, f"no backup in {folder}", "station backup, and check station-backup.timer")
    age_h = (time.time() - found[0].stat().st_mtime) / 3600
    if age_h > BACKUP_MAX_AGE_H:
        return Check("backups", FAIL, f"newest backup is {age_h:.0f} h old ({found[0].name})",
                     "systemctl status station-backup.timer; is the USB stick mounted?")
    if not found[0].name.endswith(bk.SEALED):
        return Check("backups", WARN, f"newest backup {age_h:.1f} h old and NOT encrypted ({found[0].name}): "
                     "whoever holds the stick can read names, tracks and PIN hashes",
                     "set [backup] recipients (station backup-keygen FILE) and plaintext = false")
    return Check("backups", OK, f"newest backup {age_h:.1f} h old, encrypted, {len(found)} kept")


def retention_check(cfg, status: dict | None) -> Check:
    policy = Policy.from_config(cfg).describe()
    last = (status or {}).get("retention")
    if not last:
        return Check("retention", OK, f"{policy}; no purge yet (the daemon purges a few minutes after it starts)")
    age_h = (time.time() - last["at"]) / 3600
    if last.get("error"):
        return Check("retention", FAIL, f"the last purge failed: {last['error']}",
                     "journalctl -u station; what was due stays on the card until it works")
    if age_h > 48 and (status or {}).get("daemon_running"):
        return Check("retention", WARN, f"{policy}; the last purge was {age_h:.0f} h ago", "journalctl -u station")
    return Check("retention", OK, f"{policy}; last purge {age_h:.1f} h ago")


def pin_key(cfg) -> Check:
    """Cancels are checked with the PIN key beside the database; a PIN set under another key (a
    restore onto a new card without the old pin.key) can never cancel or raise a duress."""
    path = pins.configured_key_path(cfg)
    try:
        key = pins.PinKey.load(path, create=False)
    except FileNotFoundError:
        key = None
    except pins.PinError as e:
        return Check("PIN key", FAIL, str(e), f"restore {path} from where it was kept, or remove it and set "
                                               "every PIN again (station bracelets pins NODE)")
    if not cfg.database_path.exists():
        return Check("PIN key", OK, f"{path} is made at the first start" if key is None else f"{path}")
    try:
        db = dbmod.connect(cfg.database_path, create=False)
        stranded = registry.pins_under_other_keys(db, key or pins.PinKey(b""))
        db.conn.close()
    except (dbmod.StorageError, sqlite3.Error) as e:
        return Check("PIN key", UNKNOWN, f"the bracelets cannot be read from the database: {e}")
    if stranded:
        return Check("PIN key", FAIL, f"the PINs of {len(stranded)} bracelets were set with another PIN key: "
                     "their cancel and duress PINs do nothing",
                     f"copy the old station's pin.key to {path}, or set them again: station bracelets pins NODE")
    return Check("PIN key", OK, f"{path}; every PIN can be checked" if key else f"{path} is made at the first start")


def relay_credentials(cfg) -> Check:
    if not cfg.lists.get("destinations"):
        return Check("relay", OK, "no destinations: nothing is published")
    try:
        dests = cfg.destinations(read_secrets=True)
    except configmod.ConfigError as e:
        return Check("relay", FAIL, str(e), "fix the setting named above")
    broken = [d for d in dests if d.problem and d.enabled]
    if broken:
        return Check("relay", FAIL, f"{len(broken)} of {len(dests)} destination(s) cannot be used, their posts wait "
                     "(the radio, the alarm and the console are not affected): " + "; ".join(d.problem for d in broken),
                     "mend the credential file named above, then: sudo systemctl reload station")
    return Check("relay", OK, f"{len(dests)} destination(s), credentials readable")


def services(systemctl: str | None = None) -> Check:
    systemctl = systemctl or shutil.which("systemctl")
    if systemctl is None or not os.path.isdir("/run/systemd/system"):
        return Check("services", UNKNOWN, "not running under systemd")
    states = {}
    for unit in ("station.service", "station-console.service", "station-backup.timer"):
        enabled = subprocess.run([systemctl, "is-enabled", unit], capture_output=True, text=True).stdout.strip()
        active = subprocess.run([systemctl, "is-active", unit], capture_output=True, text=True).stdout.strip()
        states[unit] = (enabled, active)
    bad = {u: s for u, s in states.items() if s != ("enabled", "active")}
    if bad:
        return Check("services", FAIL, "; ".join(f"{u} is {e or '?'}/{a or '?'}" for u, (e, a) in bad.items()),
                     "sudo systemctl enable --now " + " ".join(bad))
    return Check("services", OK, "station, station-console and station-backup.timer enabled and active")


def undervoltage(vcgencmd: str | None = None) -> Check:
    vcgencmd = vcgencmd or shutil.which("vcgencmd")
    if vcgencmd is None:
        return Check("power", UNKNOWN, "no vcgencmd: undervoltage cannot be read here")
    out = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True).stdout.strip()
    try:
        flags = int(out.split("=")[1], 16)
    except (IndexError, ValueError):
        return Check("power", UNKNOWN, f"vcgencmd said {out!r}")
    if flags & 0x1:
        return Check("power", FAIL, "undervoltage NOW", "use the official power supply and a short, thick cable")
    if flags & 0x10000:
        return Check("power", WARN, "undervoltage has occurred since boot", "check the power supply and cable")
    return Check("power", OK, "no undervoltage since boot")
