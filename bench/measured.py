"""What every benchmark records with its figures (the commit measured), and where it writes them;
and what several of them measure a process by (its CPU time, peak RSS, a console logged in to)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def private_files() -> None:
    """Files made as every station command makes them (umask 027): `station run` refuses to start
    on a config or database that other users can read, and so would refuse a benchmark's."""
    import os

    from station.at_rest import UMASK
    os.umask(UMASK)


def commit() -> str:
    """HEAD, marked when the code measured (station, web, bench) differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
        # (bench/results is what was measured, not what measures: writing one result must not
        # mark the next benchmark's commit as changed.)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "station", "web", "bench", ":!bench/results"],
                               cwd=HERE.parent,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+uncommitted changes" if dirty else "")


def save(results: dict, out: Path | None, quick: bool, name: str) -> int:
    """A full run writes bench/results/NAME (or --out); a quick run only where --out says."""
    if quick and not out:
        return 0
    out = out or HERE / "results" / name
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")
    return 0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def console(config: Path) -> subprocess.Popen:
    """`station console` on CONFIG in its own process, as the service runs it."""
    return subprocess.Popen([sys.executable, "-m", "station", "--config", str(config), "console"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def logged_in(base: str, name: str, password: str, wait_s: float = 30.0):
    """A browser's session on a console that may still be starting."""
    import requests
    s = requests.Session()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            page = s.get(base + "/login", timeout=2)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = s.post(base + "/login", data={"name": name, "password": password, "csrf_token": token})
    if "/login" in r.url:
        raise RuntimeError(f"the console refused the benchmark's login as {name}")
    return s
