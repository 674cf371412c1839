"""Nobody on the mesh or the office network slows down storing a wearer's alert (issue 11).

Wire-to-commit latency of a verified SOS (Amina's, on the office channel, ten a second; the
`station run` path in bench/latency_probe.py) in four conditions:
- quiet: nothing else;
- login flood: 16 clients hammering the console's login form with wrong passwords, from one
  address and from 16 (the console is `station console` in its own process at the service's
  niceness, as on a Pi);
- mesh flood: 250 fake SOS from made-up numbers at ten a second and 20 wrong PINs a second sent
  under her number by a node that knows the public channel's key (the `siege` scenario; thirty
  packets a second, far more than a LoRa channel carries);
- both at once.
Measured before this work: 2 login clients put the median at 4.4 s, 16 at 12 s; 20 wrong PINs a
second delayed alerts by 6-17 s. Target: p99 under 50 ms in every condition, as when quiet.

    .venv/bin/python bench/attack.py            # writes bench/results/attack.json
    .venv/bin/python bench/attack.py --quick    # a short run that checks the benchmark works (CI)
"""

from __future__ import annotations

import argparse
import collections
import http.client
import http.cookiejar
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ingest import stop
from measured import commit, free_port, private_files, save

HERE = Path(__file__).resolve().parent
PY = sys.executable


class LoginFlood:
    """Clients posting wrong passwords to the console's login form as fast as it answers."""

    def __init__(self, url: str, clients: int, addresses: bool):
        self.url, self.clients, self.addresses = url, clients, addresses
        self.stop = threading.Event()
        self.answers: collections.Counter = collections.Counter()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self) -> "LoginFlood":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(10)

    def _run(self, i: int) -> None:
        # As a browser (or a script) does: fetch the form for a session and its token, then post.
        # With `addresses`, each client comes from its own address (16 machines on the office
        # network), so the per-client limit does not stop them: the one-check-at-a-time does.
        handlers = [urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())]
        if self.addresses:
            handlers.append(_FromAddress(f"127.0.0.{10 + i}"))
        opener = urllib.request.build_opener(*handlers)
        while not self.stop.is_set():
            try:
                with opener.open(self.url, timeout=10) as r:
                    token = re.search(r'name="csrf_token" value="([^"]+)"', r.read().decode()).group(1)
                body = urllib.parse.urlencode({"name": "admin", "password": f"wrong {i}",
                                               "csrf_token": token}).encode()
                with opener.open(urllib.request.Request(self.url, data=body), timeout=10) as r:
                    self.answers[r.status] += 1
            except urllib.error.HTTPError as e:
                self.answers[e.code] += 1
            except (OSError, AttributeError):
                self.answers["error"] += 1


class _FromAddress(urllib.request.HTTPHandler):
    def __init__(self, address: str):
        super().__init__()
        self.address = address

    def http_open(self, req):
        return self.do_open(lambda host, **kw: http.client.HTTPConnection(host, source_address=(self.address, 0),
                                                                            **kw), req)


def run_condition(tmp: Path, name: str, scenario: str, n: int, login_clients: int,
                  addresses: bool = False) -> dict:
    path = tmp / f"radio-{name}"
    radio = subprocess.Popen([PY, "-m", "station", "radio", "simulate", "--pty", str(path), "--scenario", scenario,
                              "--wait-for-host"], stderr=subprocess.PIPE, text=True)
    radio.stderr.readline()
    db = tmp / f"{name}.db"
    console = flood = None
    try:
        if login_clients:
            port = free_port()
            cfg = tmp / f"{name}.toml"
            cfg.write_text(f'[storage]\ndatabase = "{db}"\n[console]\nport = {port}\n')
            subprocess.run([PY, "-m", "station", "--config", str(cfg), "users", "add", "admin", "--role", "admin",
                            "--password-stdin"], input="correct horse battery staple\n", text=True,
                           capture_output=True, check=True)
            # At the niceness station-console.service gives it (Nice=5): the daemon gets the CPU first.
            console = subprocess.Popen(["nice", "-n", "5", PY, "-m", "station", "--config", str(cfg), "console"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            flood = LoginFlood(f"http://127.0.0.1:{port}/login", login_clients, addresses).__enter__()
        out = subprocess.run([PY, str(HERE / "latency_probe.py"), str(path), str(db), str(n), "cast"],
                             capture_output=True, text=True, timeout=600)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if flood is not None:
            flood.__exit__()
        if console is not None:
            stop(console)
        stop(radio)
    if flood is not None:
        result["login_answers"] = {str(k): v for k, v in flood.answers.items()}
    result["condition"] = name
    return result


def main() -> int:
    private_files()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run that checks the benchmark works")
    ap.add_argument("--out", type=Path, help="where to write the results (default: bench/results/attack.json; "
                    "a quick run writes only here)")
    args = ap.parse_args()
    n = 30 if args.quick else 400
    results: dict = {"commit": commit(), "quick": args.quick, "sos_measured": n,
                     "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                 "platform": platform.platform()},
                     "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    conditions = [("quiet", "sos-paced", 0, False), ("login_flood_16_clients", "sos-paced", 16, False),
                  ("login_flood_16_addresses", "sos-paced", 16, True),
                  ("mesh_flood_250_fake_sos_20_pins_per_s", "siege", 0, False), ("both", "siege", 16, True)]
    with tempfile.TemporaryDirectory() as d:
        for name, scenario, clients, addresses in conditions:
            r = run_condition(Path(d), name, scenario, n, clients, addresses)
            results[name] = r
            print(f"{name}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms"
                  + (f"; login answers {r['login_answers']}" if "login_answers" in r else ""))
    results["targets_met"] = {"p99_under_50_ms_in_every_condition":
                              all(results[c[0]]["p99_ms"] < 50 for c in conditions)}
    print("targets:", results["targets_met"])
    return save(results, args.out, args.quick, "attack.json")


if __name__ == "__main__":
    raise SystemExit(main())
