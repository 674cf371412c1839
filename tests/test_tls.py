"""The console on the office network: HTTPS through Debian's nginx with the certificate install.sh
makes, never plain HTTP off loopback. From the view of someone on the office LAN (they read
nothing in clear and cannot pass for the station without its key) and of a coordinator (she
checks the fingerprint, logs in, and gets live alerts through the proxy)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from station import certificate
from station.cli import cli
from tests.conftest import free_port, listening, wait_until
from tests.web.consoles import PASSWORD, open_alert, seed, station_console

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "systemd/nginx/station-console.conf"
MAKE = REPO / "systemd/nginx/make-certificate.sh"


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing in CI (.ci/run installs nginx-light)")
        pytest.skip("nginx not installed")
    return found


def _certificate(tmp_path: Path) -> Path:
    out = subprocess.run(["bash", str(MAKE), str(tmp_path / "tls"), "station-test"], capture_output=True, text=True,
                         check=True)
    assert "Fingerprint=" in out.stdout
    return tmp_path / "tls"


def test_the_certificate_is_made_once_with_a_private_key_and_its_fingerprint_is_what_openssl_says(tmp_path):
    tls = _certificate(tmp_path)
    assert oct((tls / "console.key").stat().st_mode & 0o777) == "0o600"
    first = certificate.fingerprint(tls / "console.crt")
    again = subprocess.run(["bash", str(MAKE), str(tls), "station-test"], capture_output=True, text=True, check=True)
    # A re-install keeps the key: coordinators' browsers do not warn again.
    assert "keeping the existing" in again.stdout and certificate.fingerprint(tls / "console.crt") == first
    assert again.stdout.strip().endswith(first)


def test_the_console_will_not_serve_plain_http_on_the_office_network(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n[console]\nhost = "0.0.0.0"\n')
    r = CliRunner().invoke(cli, ["--config", str(cfg), "console"])
    assert r.exit_code == 1 and "plain HTTP on 0.0.0.0" in r.output and "nginx" in r.output
    doctor = CliRunner().invoke(cli, ["--config", str(cfg), "doctor", "--json"])
    assert "passwords and alerts cross the office network in clear" in doctor.output


def test_the_console_counts_each_lan_device_apart_behind_the_proxy(tmp_path):
    """nginx forwards the device's address; the console trusts it from loopback only, so one
    device's wrong passwords lock out that device, not everyone behind the proxy."""
    db = tmp_path / "station.db"
    seed(db)
    with station_console(db) as base:
        token = re.search(r'name="csrf_token" value="([^"]+)"', (s := requests.Session()).get(base + "/login").text)
        s.post(base + "/login", data={"name": "maria", "password": "wrong", "csrf_token": token.group(1)},
               headers={"X-Forwarded-For": "10.1.2.3"})
    audit = sqlite3.connect(db).execute("SELECT detail FROM audit WHERE action='login failed'").fetchall()
    assert audit == [("1 in a row from 10.1.2.3",)]


def _nginx_conf(tmp_path: Path, tls: Path, console_port: int, http: int, https: int) -> Path:
    site = SITE.read_text()
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http};").replace("listen [::]:80;", "")
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;").replace("listen [::]:443 ssl;", "")
    site = site.replace("/etc/station/tls", str(tls)).replace("127.0.0.1:8080", f"127.0.0.1:{console_port}")
    (tmp_path / "site.conf").write_text(site)
    temp = "".join(f"{kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                            "scgi"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(("user root;\n" if os.geteuid() == 0 else "") +
                    f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
                    f"http {{\naccess_log off;\n{temp}include {tmp_path}/site.conf;\n}}\n")
    return conf


@contextlib.contextmanager
def _proxy(tmp_path: Path, tls: Path, console: str):
    """nginx with our site file (ports and paths moved into tmp_path) in front of `console`."""
    nginx = _nginx()
    http, https = free_port(), free_port()
    conf = _nginx_conf(tmp_path, tls, int(console.rsplit(":", 1)[1]), http, https)
    checked = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(https) and listening(http), 10, what="nginx")
        yield http, https
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_coordinator_checks_the_fingerprint_logs_in_and_gets_live_alerts_over_https(tmp_path):
    _nginx()
    tls = _certificate(tmp_path)
    db = tmp_path / "station.db"
    seed(db, ("INSERT INTO bracelets (node_num, label, added_at) VALUES (?, 'Amina D.', 0)", (0xB5A1E001,)))
    fp = certificate.fingerprint(tls / "console.crt")
    with station_console(db, f'certificate = "{tls / "console.crt"}"\nsecure_cookies = true') as base:
        with _proxy(tmp_path, tls, base) as (http, https):
            # Plain HTTP on the LAN answers only with the way to HTTPS.
            moved = requests.get(f"http://127.0.0.1:{http}/login", allow_redirects=False, timeout=10)
            assert moved.status_code == 301 and moved.headers["Location"].startswith("https://")
            site = f"https://127.0.0.1:{https}"
            s = requests.Session()
            s.trust_env = False                      # no CA bundle from the environment: only the pin
            s.verify = str(tls / "console.crt")      # the certificate itself, as a coordinator pins it
            page = s.get(site + "/login", timeout=10)
            assert page.status_code == 200 and "max-age" in page.headers["Strict-Transport-Security"]
            assert fp in page.text                    # shown before she types her password
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = s.post(site + "/login", data={"name": "maria", "password": PASSWORD, "csrf_token": token},
                       allow_redirects=False, timeout=10)
            assert r.status_code == 302 and "Secure" in r.headers["Set-Cookie"]
            assert fp in s.get(site + "/health", timeout=10).text
            stream = s.get(site + "/api/stream", stream=True, timeout=10)
            iid = open_alert(db, 0xB5A1E001)
            got, deadline = "", time.monotonic() + 15
            for chunk in stream.iter_content(chunk_size=None, decode_unicode=True):
                got += chunk
                if "event: incident" in got or time.monotonic() > deadline:
                    break
            stream.close()
            assert f'"incident": {iid}' in got       # not held in the proxy's buffer


def test_someone_on_the_lan_posing_as_the_station_with_another_certificate_is_refused(tmp_path):
    """Same host name, another key: a browser that pinned the station's certificate (or a
    coordinator comparing fingerprints) does not talk to it."""
    _nginx()
    mine = _certificate(tmp_path / "station")
    theirs = _certificate(tmp_path / "impostor")
    assert certificate.fingerprint(mine / "console.crt") != certificate.fingerprint(theirs / "console.crt")
    db = tmp_path / "station.db"
    seed(db)
    with station_console(db) as base, _proxy(tmp_path, theirs, base) as (_, https):
        s = requests.Session()
        s.trust_env = False
        with pytest.raises(requests.exceptions.SSLError):
            s.get(f"https://127.0.0.1:{https}/login", verify=str(mine / "console.crt"), timeout=10)
        # The same request, pinned to the impostor's own certificate, goes through: only the key differs.
        assert s.get(f"https://127.0.0.1:{https}/login", verify=str(theirs / "console.crt"), timeout=10).ok
