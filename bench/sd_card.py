"""SD-card wear: what `station run` writes to storage, and how often it forces it (fsync), at idle
and on a mesh of one packet a second, extrapolated to a day.

A Pi's SD card dies of small synchronous writes. Issue 14 measured 4.6 kB/s (about 400 MB a day)
and an fsync every 2 s at idle, from a status snapshot stored through the database; the target is
under 5 MB a day and at most one fsync a minute at idle.

Bytes are the kernel's count of what the station process sent to the block layer
(/proc/PID/io write_bytes, every thread); fsyncs are counted by strace (fsync and fdatasync).

    .venv/bin/python bench/sd_card.py            # writes bench/results/sd_card.json (10 min a mode)
    .venv/bin/python bench/sd_card.py --quick    # a short run that checks the benchmark works (CI)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from measured import commit, private_files, save

HERE = Path(__file__).resolve().parent
PY = sys.executable
DAY_S = 86400


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/PID/io")


def child_of(pid: int, timeout: float = 30) -> int:
    """The station under strace: its child running `station ... run`. strace also forks short-lived
    children of its own at start (to probe ptrace features), which must not be taken for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kid in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            try:
                argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:3] == [PY.encode(), b"-m", b"station"]:      # not strace's own copy of its argv
                return int(kid)
        time.sleep(0.05)
    raise RuntimeError("strace did not start the station")


def fsyncs_between(trace: Path, t0: float, t1: float) -> int:
    n = 0
    for line in trace.read_text().splitlines():
        parts = line.split(None, 2)   # pid, epoch time, call
        if len(parts) == 3 and parts[2].startswith(("fsync(", "fdatasync(")) and t0 <= float(parts[1]) < t1:
            n += 1
    return n


def measure(tmp: Path, scenario: str, seconds: float, settle_s: float) -> dict:
    radio_path = tmp / f"radio-{scenario}"
    db, cfg, trace = tmp / f"{scenario}.db", tmp / f"{scenario}.toml", tmp / f"{scenario}.strace"
    cfg.write_text(f'[radio]\nport = "{radio_path}"\n[storage]\ndatabase = "{db}"\n'
                   '[gpio]\nenabled = false\n[log]\nlevel = "INFO"\n')
    radio = subprocess.Popen([PY, "-m", "station", "radio", "simulate", "--pty", str(radio_path), "--scenario",
                              scenario, "--wait-for-host"], stderr=subprocess.PIPE, text=True)
    radio.stderr.readline()   # "virtual radio on ..."
    # The status snapshot goes where it goes on a Pi: a RAM file system (/run/station there).
    run_dir = tempfile.TemporaryDirectory(prefix="station-run-", dir="/dev/shm")
    env = {**os.environ, "STATION_RUNTIME_DIR": run_dir.name}
    # Its log goes to a pipe, as to journald on a Pi: not counted as the station's own disk writes.
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-ttt", "-e", "trace=fsync,fdatasync", "-o", str(trace),
                               PY, "-m", "station", "--config", str(cfg), "run"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    pid = None
    said: collections.deque[str] = collections.deque(maxlen=40)
    try:
        pid = child_of(tracer.pid)
        connected = threading.Event()

        def follow_log() -> None:     # and keep the pipe drained for the rest of the run
            for line in tracer.stdout:
                said.append(line.rstrip())
                if "radio.connected" in line:
                    connected.set()
        threading.Thread(target=follow_log, daemon=True).start()
        if not connected.wait(60):
            raise RuntimeError("the station did not connect to the virtual radio within 60 s:\n" + "\n".join(said))
        # Start-up writes (migrations, handshake, the first checkpoint) are not the steady state.
        wal, deadline = db.with_name(db.name + "-wal"), time.monotonic() + 60
        if scenario == "idle":
            while (not wal.exists() or wal.stat().st_size) and time.monotonic() < deadline:
                time.sleep(0.5)
        time.sleep(settle_s)
        try:
            t0, b0 = time.time(), write_bytes(pid)
            time.sleep(seconds)
            t1, b1 = time.time(), write_bytes(pid)
        except OSError as e:
            raise RuntimeError(f"the station (pid {pid}) could not be measured ({e}; strace exit status "
                               f"{tracer.poll()}); it said:\n" + "\n".join(said)) from None
        with sqlite3.connect(db) as conn:
            packets = conn.execute("SELECT COUNT(*) FROM packets WHERE received_at >= ?", (t0,)).fetchone()[0]
    finally:
        # strace neither passes SIGTERM on nor exits on it: stop the station, strace follows.
        # Whatever went wrong, nothing is left running (a virtual radio left behind would hold
        # this script's output open, and its caller would wait for it forever).
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        try:
            tracer.wait(30)
        except subprocess.TimeoutExpired:
            tracer.kill()
        radio.terminate()
        try:
            radio.wait(10)
        except subprocess.TimeoutExpired:
            radio.kill()
        run_dir.cleanup()
    fsyncs = fsyncs_between(trace, t0, t1)
    span = t1 - t0
    return {"scenario": scenario, "seconds": round(span, 1), "packets_stored": packets,
            "bytes_written": b1 - b0, "fsyncs": fsyncs,
            "mb_per_day": round((b1 - b0) / span * DAY_S / 1e6, 2),
            "fsyncs_per_hour": round(fsyncs / span * 3600, 1)}


def main() -> int:
    private_files()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run that checks the benchmark works")
    ap.add_argument("--seconds", type=float, help="seconds measured per mode (default 600, quick 10)")
    ap.add_argument("--out", type=Path, help="where to write the results (default: bench/results/sd_card.json; "
                    "a quick run writes only here)")
    args = ap.parse_args()
    if not shutil.which("strace"):
        print("strace is needed to count fsyncs (apt install strace)", file=sys.stderr)
        return 2
    seconds = args.seconds or (10.0 if args.quick else 600.0)
    results: dict = {"commit": commit(), "quick": args.quick,
                     "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                 "platform": platform.platform()},
                     "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory() as d:
        settle_s = 1.0 if args.quick else 5.0
        results["idle"] = measure(Path(d), "idle", seconds, settle_s)
        results["one_packet_per_s"] = measure(Path(d), "trickle", seconds, settle_s)
    idle = results["idle"]
    results["targets_met"] = {"idle_under_5_mb_a_day": idle["mb_per_day"] < 5,
                              "idle_at_most_one_fsync_a_minute": idle["fsyncs_per_hour"] <= 60}
    for mode in ("idle", "one_packet_per_s"):
        r = results[mode]
        print(f"{mode}: {r['bytes_written']} bytes and {r['fsyncs']} fsyncs in {r['seconds']} s "
              f"({r['packets_stored']} packets): {r['mb_per_day']} MB/day, {r['fsyncs_per_hour']} fsyncs/hour")
    print("targets:", results["targets_met"])
    return save(results, args.out, args.quick, "sd_card.json")


if __name__ == "__main__":
    raise SystemExit(main())
