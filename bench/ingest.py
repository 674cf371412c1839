"""Ingestion benchmark: the station's full path against the bare meshtastic library, and what a
station restart loses, on the virtual radio playing real firmware (default 2.7.26).

In one run, with the virtual radio in its own process:
- over a pty and over TCP: throughput and CPU time per frame of `station run` (frame on the
  wire, decode, classify, durable commit) against the bare library receiving the same frames
  (bench/bare_receiver.py); wire-to-commit latency p50/p99 at 10 frames a second
  (bench/latency_probe.py); peak RSS and start-up time to "radio connected";
- over a pty, on a mesh of 5 packets a second (one in five a numbered SOS), the alerts lost by
  station restarts with a 5 s outage, for a radio that keeps 32 packets for its host and one that
  keeps 8 (an original ESP32), after a clean stop (SIGTERM: the station says goodbye, the radio
  queues) and after a crash (kill -9: the radio writes into a port nobody reads).

    .venv/bin/python bench/ingest.py            # writes bench/results/ingest.json
    .venv/bin/python bench/ingest.py --quick    # a small run that checks the benchmark works (CI)

Targets (issue 2): full path >= half the bare library's throughput, p99 < 50 ms, RSS < 80 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measured import commit, cpu_s, free_port, peak_rss_mib, private_files, save

HERE = Path(__file__).resolve().parent
PY = sys.executable




class Bench:
    def __init__(self, tmp: Path, firmware: str, frames: int):
        self.tmp, self.firmware, self.frames = tmp, firmware, frames

    def radio(self, transport: str, scenario: str, *, device: str = "heltec-v3",
              limit: int | None = None) -> tuple[subprocess.Popen, str]:
        if transport == "tcp":
            port = free_port()
            args, where = ["--tcp", str(port)], f"tcp://127.0.0.1:{port}"
        else:
            path = self.tmp / f"radio-{scenario}-{device}-{time.monotonic_ns()}"
            args, where = ["--pty", str(path)], str(path)
        proc = subprocess.Popen([PY, "-m", "station", "radio", "simulate", *args, "--scenario", scenario,
                                 "--wait-for-host", "--firmware", self.firmware, "--device", device,
                                 *(["--limit", str(limit)] if limit else [])],
                                stderr=subprocess.PIPE, text=True)
        proc.stderr.readline()   # "virtual radio on ..."
        return proc, where

    def config(self, name: str, where: str) -> Path:
        db_path, cfg = self.tmp / f"{name}.db", self.tmp / f"{name}.toml"
        cfg.write_text(f'[radio]\nport = "{where}"\n[storage]\ndatabase = "{db_path}"\n'
                       '[gpio]\nenabled = false\n[receipts]\nenabled = false\n[log]\nlevel = "INFO"\n')
        return cfg

    @staticmethod
    def station(cfg: Path) -> tuple[subprocess.Popen, float]:
        """`station run`, and the seconds to "radio connected" (logs go to standard output)."""
        t0 = time.perf_counter()
        proc = subprocess.Popen([PY, "-m", "station", "--config", str(cfg), "run"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        for line in proc.stdout:
            if "radio.connected" in line:
                return proc, time.perf_counter() - t0
        raise RuntimeError(f"station exited ({proc.wait()}) before connecting to the radio")

    def bare(self, transport: str) -> dict:
        radio, where = self.radio(transport, "flood", limit=self.frames)
        try:
            out = subprocess.run([PY, str(HERE / "bare_receiver.py"), where, str(self.frames)], capture_output=True,
                                 text=True, timeout=300)
            return json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            stop(radio)

    def full(self, transport: str) -> dict:
        radio, where = self.radio(transport, "flood", limit=self.frames)
        cfg = self.config(f"full-{transport}", where)
        station, startup = self.station(cfg)
        try:
            cpu0 = cpu_s(station.pid)
            db = sqlite3.connect(cfg.with_suffix(".db"))
            deadline = time.time() + 300
            while db.execute("SELECT COUNT(*) FROM packets").fetchone()[0] < self.frames:
                if time.time() > deadline:
                    raise RuntimeError("the station did not store all frames")
                time.sleep(0.005)
            t_done = time.time()
            cpu1 = cpu_s(station.pid)
            t_first = db.execute("SELECT MIN(received_at) FROM packets").fetchone()[0]
            rss = peak_rss_mib(station.pid)
            db.close()
            return {"frames_per_s": (self.frames - 1) / (t_done - t_first),
                    "cpu_us_per_frame": (cpu1 - cpu0) / self.frames * 1e6, "wall_s": t_done - t_first,
                    "peak_rss_mib": rss, "startup_to_radio_connected_s": startup}
        finally:
            stop(station)
            stop(radio)

    def latency(self, transport: str, n: int) -> dict:
        radio, where = self.radio(transport, "paced")
        try:
            out = subprocess.run([PY, str(HERE / "latency_probe.py"), where, str(self.tmp / f"lat-{transport}.db"),
                                  str(n)], capture_output=True, text=True, timeout=300)
            return json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            stop(radio)

    def restarts(self, device: str, how: str, rounds: int, run_s: float, outage_s: float) -> dict:
        """Alerts lost by `rounds` station restarts, each leaving the radio without a host for
        `outage_s` plus the new station's start-up."""
        radio, where = self.radio("pty", "busy-mesh", device=device)
        cfg = self.config(f"restart-{device}-{how}", where)
        outages = []
        station, _ = self.station(cfg)
        try:
            time.sleep(run_s)
            for _ in range(rounds):
                if how == "crash":
                    station.kill()
                else:
                    station.send_signal(signal.SIGTERM)
                station.wait(30)
                down = time.perf_counter()
                time.sleep(outage_s)
                station, _ = self.station(cfg)
                outages.append(time.perf_counter() - down)
                time.sleep(run_s)
        finally:
            stop(station)
            stop(radio)
        with sqlite3.connect(cfg.with_suffix(".db")) as db:
            texts = [r[0] for r in db.execute("SELECT raw FROM packets WHERE port='TEXT_MESSAGE_APP'")]
        from meshtastic.protobuf import mesh_pb2
        numbers = set()
        for raw in texts:
            m = re.match(rb"SOS (\d+)", mesh_pb2.MeshPacket.FromString(raw).decoded.payload)
            if m:
                numbers.add(int(m.group(1)))
        sent = range(min(numbers), max(numbers) + 1) if numbers else range(0)
        lost = [n for n in sent if n not in numbers]
        return {"device": device, "restart": how, "rounds": rounds, "outage_s": [round(o, 2) for o in outages],
                "alerts_sent": len(sent), "alerts_stored": len(numbers), "alerts_lost": len(lost),
                "lost_per_restart": round(len(lost) / rounds, 2)}


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> int:
    private_files()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small run that checks the benchmark works; writes nothing")
    ap.add_argument("--firmware", default="2.7.26", help="the virtual radio's firmware profile")
    ap.add_argument("--out", type=Path, help="where to write the results (default: bench/results/ingest.json; "
                    "a quick run writes only here)")
    args = ap.parse_args()
    frames, lat_n = (300, 20) if args.quick else (5000, 300)
    rounds, run_s, outage_s = (1, 1.0, 1.0) if args.quick else (4, 8.0, 5.0)
    results: dict = {"commit": commit(), "firmware": args.firmware, "quick": args.quick,
                     "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                 "platform": platform.platform()},
                     "frames": frames, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory() as d:
        bench = Bench(Path(d), args.firmware, frames)
        for transport in ("pty", "tcp"):
            b, f = bench.bare(transport), bench.full(transport)
            results[transport] = {
                "bare_library": b, "station_full_path": f,
                "throughput_ratio": f["frames_per_s"] / b["frames_per_s"],
                "latency_at_10_per_s": bench.latency(transport, lat_n),
            }
        results["restart_loss_5_packets_per_s"] = [
            bench.restarts(device, how, rounds, run_s, outage_s)
            for device in ("heltec-v3", "tbeam") for how in ("clean", "crash")]
    checks = {
        "throughput_at_least_half_of_bare": all(results[t]["throughput_ratio"] >= 0.5 for t in ("pty", "tcp")),
        "p99_wire_to_commit_under_50_ms": all(results[t]["latency_at_10_per_s"]["p99_ms"] < 50 for t in ("pty", "tcp")),
        "peak_rss_under_80_mib": all(results[t]["station_full_path"]["peak_rss_mib"] < 80 for t in ("pty", "tcp")),
    }
    results["targets_met"] = checks
    for t in ("pty", "tcp"):
        r = results[t]
        print(f"{t}: bare {r['bare_library']['frames_per_s']:.0f} f/s "
              f"({r['bare_library']['cpu_us_per_frame']:.0f} us CPU/frame), "
              f"station {r['station_full_path']['frames_per_s']:.0f} f/s "
              f"({r['station_full_path']['cpu_us_per_frame']:.0f} us CPU/frame), ratio {r['throughput_ratio']:.2f}; "
              f"latency p50 {r['latency_at_10_per_s']['p50_ms']:.1f} ms p99 {r['latency_at_10_per_s']['p99_ms']:.1f} ms; "
              f"RSS {r['station_full_path']['peak_rss_mib']:.1f} MiB; "
              f"start-up {r['station_full_path']['startup_to_radio_connected_s']:.2f} s")
    for r in results["restart_loss_5_packets_per_s"]:
        print(f"restart ({r['restart']}, {r['device']}): {r['alerts_lost']} of {r['alerts_sent']} alerts lost "
              f"over {r['rounds']} restart(s), outages {r['outage_s']} s")
    print("targets:", checks)
    return save(results, args.out, args.quick, "ingest.json")


if __name__ == "__main__":
    raise SystemExit(main())
