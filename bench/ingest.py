"""Ingestion benchmark: the station's full path against the bare meshtastic library.

In one run, over a pty and over TCP, with the virtual radio in its own process:
- throughput and CPU time per frame: `station run` (frame on the wire, decode, classify, durable
  commit) against the bare library receiving the same frames (bench/bare_receiver.py);
- wire-to-commit latency p50/p99 at 10 frames a second (bench/latency_probe.py);
- peak RSS of `station run`, and its start-up time to "radio connected".

    .venv/bin/python bench/ingest.py            # writes bench/results/ingest.json

Targets (issue 2): full path >= half the bare library's throughput, p99 < 50 ms, RSS < 80 MiB.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
START_AFTER_S = 5.0
N = 5000   # station.radio.virtual.scenarios.FLOOD_PACKETS


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_radio(transport: str, tmp: Path, scenario: str) -> tuple[subprocess.Popen, str]:
    if transport == "tcp":
        port = free_port()
        args, where = ["--tcp", str(port)], f"tcp://127.0.0.1:{port}"
    else:
        path = tmp / f"radio-{scenario}"
        args, where = ["--pty", str(path)], str(path)
    proc = subprocess.Popen([PY, "-m", "station", "radio", "simulate", *args, "--scenario", scenario,
                             "--start-after", str(START_AFTER_S)], stderr=subprocess.PIPE, text=True)
    proc.stderr.readline()   # "virtual radio on ..."
    return proc, where


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def bare(transport: str, tmp: Path) -> dict:
    radio, where = start_radio(transport, tmp, "flood")
    try:
        out = subprocess.run([PY, str(HERE / "bare_receiver.py"), where, str(N)], capture_output=True, text=True,
                             timeout=300)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        stop(radio)


def full(transport: str, tmp: Path) -> dict:
    radio, where = start_radio(transport, tmp, "flood")
    db_path = tmp / f"full-{transport}.db"
    cfg = tmp / f"full-{transport}.toml"
    cfg.write_text(f'[radio]\nport = "{where}"\n[storage]\ndatabase = "{db_path}"\n'
                   '[gpio]\nenabled = false\n[receipts]\nenabled = false\n[log]\nlevel = "INFO"\n')
    t0 = time.perf_counter()
    station = subprocess.Popen([PY, "-m", "station", "--config", str(cfg), "run"], stderr=subprocess.PIPE, text=True)
    try:
        for line in station.stderr:
            if "radio connected" in line:
                startup = time.perf_counter() - t0
                break
        cpu0 = cpu_s(station.pid)
        db = sqlite3.connect(db_path)
        deadline = time.time() + 300
        while db.execute("SELECT COUNT(*) FROM packets").fetchone()[0] < N:
            if time.time() > deadline:
                raise RuntimeError("the station did not store all frames")
            time.sleep(0.005)
        t_done = time.time()
        cpu1 = cpu_s(station.pid)
        t_first = db.execute("SELECT MIN(received_at) FROM packets").fetchone()[0]
        rss = peak_rss_mib(station.pid)
        db.close()
        return {"frames_per_s": (N - 1) / (t_done - t_first), "cpu_us_per_frame": (cpu1 - cpu0) / N * 1e6,
                "wall_s": t_done - t_first, "peak_rss_mib": rss, "startup_to_radio_connected_s": startup}
    finally:
        stop(station)
        stop(radio)


def latency(transport: str, tmp: Path) -> dict:
    radio, where = start_radio(transport, tmp, "paced")
    try:
        out = subprocess.run([PY, str(HERE / "latency_probe.py"), where, str(tmp / f"lat-{transport}.db"), "300"],
                             capture_output=True, text=True, timeout=300)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        stop(radio)


def main() -> int:
    results: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                 "platform": platform.platform()},
                     "frames": N, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for transport in ("pty", "tcp"):
            b, f = bare(transport, tmp), full(transport, tmp)
            results[transport] = {
                "bare_library": b, "station_full_path": f,
                "throughput_ratio": f["frames_per_s"] / b["frames_per_s"],
                "latency_at_10_per_s": latency(transport, tmp),
            }
    checks = {
        "throughput_at_least_half_of_bare": all(results[t]["throughput_ratio"] >= 0.5 for t in ("pty", "tcp")),
        "p99_wire_to_commit_under_50_ms": all(results[t]["latency_at_10_per_s"]["p99_ms"] < 50 for t in ("pty", "tcp")),
        "peak_rss_under_80_mib": all(results[t]["station_full_path"]["peak_rss_mib"] < 80 for t in ("pty", "tcp")),
    }
    results["targets_met"] = checks
    out = HERE / "results" / "ingest.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for t in ("pty", "tcp"):
        r = results[t]
        print(f"{t}: bare {r['bare_library']['frames_per_s']:.0f} f/s "
              f"({r['bare_library']['cpu_us_per_frame']:.0f} us CPU/frame), "
              f"station {r['station_full_path']['frames_per_s']:.0f} f/s "
              f"({r['station_full_path']['cpu_us_per_frame']:.0f} us CPU/frame), ratio {r['throughput_ratio']:.2f}; "
              f"latency p50 {r['latency_at_10_per_s']['p50_ms']:.1f} ms p99 {r['latency_at_10_per_s']['p99_ms']:.1f} ms; "
              f"RSS {r['station_full_path']['peak_rss_mib']:.1f} MiB; "
              f"start-up {r['station_full_path']['startup_to_radio_connected_s']:.2f} s")
    print("targets:", checks)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
