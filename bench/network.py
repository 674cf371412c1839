"""Network benchmark: ten stations at 10 alerts a second each through one mosquitto (TLS, ACL,
persistence, as `station hub broker-config` writes it) to the hub (`station hub run`, its own
process): station-commit to hub-commit latency p50/p99, the hub's CPU and peak RSS; then one
station's week-long offline backlog (100,000 events) caught up: the time it takes and the hub's
Network page p95 meanwhile, as a coordinator's browser gets it from a console beside the hub.

Each station is the station's own code path from the commit on: an alert stored in its SQLite
file, queued by the trigger in the same transaction, published by its network link; its radio is
left out (bench/ingest.py measures that part).

    .venv/bin/python bench/network.py            # 30 s at 100 alerts/s, backlog 100,000
    .venv/bin/python bench/network.py --quick    # 3 s, backlog 2,000; writes only to --out (CI)
    .venv/bin/python bench/network.py --rabbitmq # the same through a three-node RabbitMQ cluster
                                                 # (the stations spread over its nodes, the hub on
                                                 # the first): bench/results/network-rabbitmq.json
"""

from __future__ import annotations

import argparse
import itertools
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from measured import commit, console, cpu_s, free_port, logged_in, peak_rss_mib, private_files, save  # noqa: E402
from station import config, users  # noqa: E402
from station.clock import SystemClock  # noqa: E402
from station.network import queue  # noqa: E402
from station.network.service import Network  # noqa: E402
from station.storage import db as dbmod  # noqa: E402
from station.storage.migrations import migrate  # noqa: E402
from station.storage.writer import Writer  # noqa: E402
from tests.broker import Mosquitto  # noqa: E402
from tests.rabbitmq import RabbitCluster  # noqa: E402
from tests.conftest import wait_until  # noqa: E402

STATIONS = [f"s{i:02d}" for i in range(10)]


def _pct(sorted_values: list[float], q: float) -> float:
    """The q-quantile of sorted values, by the nearest rank (never below the median)."""
    import math
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(len(sorted_values) * q) - 1))]


def _addresses(mq) -> Iterator[str]:
    """Where each client connects, in turn: mosquitto's one address, or the cluster's nodes."""
    if isinstance(mq, RabbitCluster):
        return itertools.cycle(f"mqtts://localhost:{port}" for port in mq.ports)
    return itertools.repeat(mq.url)


def _station(work: Path, mq, name: str, url: str) -> tuple[Network, Writer]:
    cfg = config.validate({"storage": {"database": str(work / f"{name}.db")},
                           "network": {"enabled": True, "broker": url, "station_id": name,
                                       "password_file": mq.password_file(name), "ca_file": str(mq.ca)}},
                          None, work)
    writer = Writer(cfg.database_path).start()
    return Network(cfg, writer, SystemClock()), writer


def _alert(writer: Writer, node: int) -> None:
    now = time.time()
    writer.call(lambda db: db.execute("INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust) "
                                      "VALUES (?,?,?,'keyword','open','registered')", (node, now, now)))


def _hub(work: Path, mq, url: str) -> subprocess.Popen:
    cfg = work / "hub.toml"
    cfg.write_text(f'[hub]\ndatabase = "{work / "hub.db"}"\nbroker = "{url}"\n'
                   f'password_file = "{mq.password_file("hub")}"\nca_file = "{mq.ca}"\n[log]\nlevel = "WARNING"\n')
    proc = subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "hub", "run"],
                            stdout=subprocess.DEVNULL, stderr=open(work / "hub.log", "ab"))
    wait_until(lambda: (work / "hub.db").exists(), 20, what="the hub to start")
    return proc


def _network_console(work: Path) -> tuple[subprocess.Popen, str]:
    """The console beside the hub (its config names the hub's database), with a viewer account."""
    db = dbmod.connect(work / "console.db")
    migrate(db)
    users.add(db, "bench", "viewer", "benchmark password", time.time(), "bench")
    db.conn.close()
    port = free_port()
    cfg = work / "console.toml"
    cfg.write_text(f'[storage]\ndatabase = "{work / "console.db"}"\n[console]\nport = {port}\n'
                   f'[hub]\ndatabase = "{work / "hub.db"}"\n')
    return console(cfg), f"http://127.0.0.1:{port}"


def _applied(work: Path, station: str | None = None) -> int:
    with sqlite3.connect(work / "hub.db") as db:
        if station is None:
            return db.execute("SELECT COUNT(*) FROM applied").fetchone()[0]
        return db.execute("SELECT COUNT(*) FROM applied WHERE station=?", (station,)).fetchone()[0]


def run(seconds: float, rate: float, backlog: int, rabbitmq: bool = False) -> dict:
    private_files()
    work = Path(tempfile.mkdtemp(prefix="bench-network-"))
    accounts = {"hub": "hub-pw", **{s: f"{s}-pw" for s in STATIONS}, "late": "late-pw"}
    mq = (RabbitCluster if rabbitmq else Mosquitto)(work / "broker", accounts).start()
    to = _addresses(mq)
    hub = _hub(work, mq, next(to))
    page, base = _network_console(work)
    nets = [_station(work, mq, s, next(to)) for s in STATIONS]
    try:
        browser = logged_in(base, "bench", "benchmark password")
        for net, _ in nets:
            net.start()
        wait_until(lambda: all(n.link.connected for n, _ in nets), 20, what="every station on the broker")
        cpu0 = cpu_s(hub.pid)
        t0 = time.monotonic()
        stop = threading.Event()

        def feed(i: int, writer: Writer) -> None:
            k, start = 0, time.monotonic()
            while not stop.is_set():
                _alert(writer, 0x30000000 + i * 1_000_000 + k)
                k += 1
                time.sleep(max(0.0, start + k / rate - time.monotonic()))
        feeders = [threading.Thread(target=feed, args=(i, w), daemon=True) for i, (_, w) in enumerate(nets)]
        for f in feeders:
            f.start()
        time.sleep(seconds)
        stop.set()
        for f in feeders:
            f.join()
        total = sum(w.call(lambda db: db.execute("SELECT COUNT(*) FROM network_queue").fetchone()[0])
                    for _, w in nets)
        wait_until(lambda: _applied(work) >= total, 120, what="the hub to apply every event")
        elapsed = time.monotonic() - t0
        cpu1, rss = cpu_s(hub.pid), peak_rss_mib(hub.pid)
        took = []
        with sqlite3.connect(work / "hub.db") as hdb:
            hub_at = {(s, q): a for s, q, a in hdb.execute("SELECT station, seq, at FROM applied")}
        for name, (_, w) in zip(STATIONS, nets):
            for seq, created in w.call(lambda db: db.execute("SELECT seq, created_at FROM network_queue").fetchall()):
                took.append((hub_at[(name, seq)] - created) * 1000)
        took.sort()
        live = {"stations": len(STATIONS), "alerts_per_s_each": rate, "events": total,
                "commit_to_hub_ms": {"p50": round(statistics.median(took), 1),
                                     "p99": round(_pct(took, 0.99), 1), "max": round(took[-1], 1)},
                "hub_cpu_percent": round((cpu1 - cpu0) / elapsed * 100, 1), "hub_peak_rss_mib": round(rss)}

        # A station offline for a week: its backlog queued, then the link comes up.
        late, lw = _station(work, mq, "late", next(to))
        lw.call(queue.install)
        now = time.time()
        lw.call(lambda db: db.conn.executemany(
            "INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust) "
            "VALUES (?,?,?,'keyword','open','registered')",
            [(0x40000000 + k, now - 7 * 86400 + k, now - 7 * 86400 + k) for k in range(backlog)]))
        t1 = time.monotonic()
        late.start()
        page_ms, server_ms = [], []
        while _applied(work, "late") < backlog:
            q0 = time.perf_counter()
            r = browser.get(base + "/network", timeout=30)
            page_ms.append((time.perf_counter() - q0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"the Network page answered {r.status_code}")
            server_ms.append(float(r.headers["Server-Timing"].split("dur=")[1]))
            if time.monotonic() - t1 > 1800:
                raise RuntimeError("the backlog did not drain in 30 minutes")
            time.sleep(0.2)
        caught_up = time.monotonic() - t1
        if 'id="station-late"' not in browser.get(base + "/network", timeout=30).text:
            raise RuntimeError("the Network page does not show the station that caught up")
        page_ms.sort()
        server_ms.sort()
        late.stop()
        lw.stop()
        backlog_result = {"events": backlog, "caught_up_s": round(caught_up, 1),
                          "events_per_s": round(backlog / caught_up),
                          "network_page_ms": {"p50": round(statistics.median(page_ms), 1),
                                              "p95": round(_pct(page_ms, 0.95), 1), "n": len(page_ms),
                                              "server_p95": round(_pct(server_ms, 0.95), 1)}}
    finally:
        for net, w in nets:
            net.stop()
            w.stop()
        hub.terminate()
        hub.wait(20)
        page.terminate()
        page.wait(20)
        mq.stop()
    return {"broker": "RabbitMQ 3.10, three nodes" if rabbitmq else "mosquitto 2.0",
            "live": live, "backlog": backlog_result,
            "note": "stations, broker and hub on one 2-core machine; the hub in its own process"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--rabbitmq", action="store_true", help="through a three-node RabbitMQ cluster")
    args = ap.parse_args()
    results = {"commit": commit(), "quick": args.quick,
               **(run(3.0, 10.0, 2000, args.rabbitmq) if args.quick else run(30.0, 10.0, 100_000, args.rabbitmq))}
    print(results)
    return save(results, args.out, args.quick, "network-rabbitmq.json" if args.rabbitmq else "network.json")


if __name__ == "__main__":
    sys.exit(main())
