"""Console benchmark: 100,000 incidents and 1,000,000 stored packets.

Measures, with the console under waitress in its own process: server time p50/p95 (from the
Server-Timing header) of the alerts page, an incident page and the main API calls (target p95
under 100 ms), the time for a new alert to reach an open event stream (target under 1 s), and
the console's peak RSS. Two offline maps of 349,525 tiles each (zooms 0 to 9, one PMTiles with
leaf directories, one MBTiles) are imported, so the incident page lists them and random deep
tiles are served from both. Then 50 pages hold the live stream open while the console's answers
are timed round trip (target p95 under 100 ms) and one alert must reach every page; then eight
connections flood the login form while a logged-in coordinator's pages are timed.

    .venv/bin/python bench/console.py          # writes bench/results/console.json
    .venv/bin/python bench/console.py --quick  # the same steps, small, writes only to --out (CI)
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from measured import commit, console as start_console, free_port, logged_in, peak_rss_mib, private_files, save  # noqa: E402
from station import maps, users  # noqa: E402
from station.storage import db as dbmod  # noqa: E402
from station.storage.migrations import migrate  # noqa: E402

OPEN = 40


@dataclass(frozen=True)
class Sizes:
    incidents: int = 100_000
    packets: int = 1_000_000
    positions: int = 300_000
    map_zoom: int = 9
    requests: int = 60
    stream_rounds: int = 10
    open_pages: int = 50
    flood_s: float = 10.0


QUICK = Sizes(incidents=500, packets=5_000, positions=1_000, map_zoom=4, requests=5, stream_rounds=2, open_pages=5,
              flood_s=1.0)


def round_trips(s: requests.Session, base: str, paths: list[str], n: int) -> dict:
    """Wall-clock round trips, as a coordinator's browser sees them: a console out of threads
    shows here, not in its own Server-Timing."""
    took = []
    for i in range(n):
        t = time.perf_counter()
        r = s.get(base + paths[i % len(paths)], timeout=30)
        took.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (paths[i % len(paths)], r.status_code)
    return {"p50_ms": round(pct(took, 50), 2), "p95_ms": round(pct(took, 95), 2), "requests": n}


def open_pages(s: requests.Session, base: str, db_path: Path, size: Sizes) -> dict:
    """`size.open_pages` pages each holding the live stream: the console's answers meanwhile, and
    the time until every one of them has heard a new alert."""
    streams = [s.get(base + "/api/stream", stream=True, timeout=10) for _ in range(size.open_pages)]
    try:
        codes = [r.status_code for r in streams]
        heard = []

        def listen(r):
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("event: incident"):
                    heard.append(time.perf_counter())
                    return
        readers = [threading.Thread(target=listen, args=(r,), daemon=True) for r in streams if r.status_code == 200]
        for t in readers:
            t.start()
        answers = round_trips(s, base, ["/api/state", "/", "/api/alerts"], size.requests * 3)
        w = dbmod.connect(db_path)
        sent = time.perf_counter()
        w.execute("INSERT INTO events (incident_id, at, actor, action) VALUES (1, ?, 'wearer', 'alert opened')",
                  (time.time(),))
        w.conn.close()
        for t in readers:
            t.join(10)
        return {"pages": size.open_pages, "streams_served": codes.count(200), "streams_told_to_poll": codes.count(503),
                "answers_meanwhile": answers,
                "all_streams_heard_alert_ms": round((max(heard) - sent) * 1000, 1) if len(heard) == len(readers) else None}
    finally:
        for r in streams:
            r.close()


def login_flood(s: requests.Session, base: str, size: Sizes, clients: int = 8) -> dict:
    """Someone on the LAN hammering the login form from `clients` connections for `size.flood_s`:
    how it is answered, and what a logged-in coordinator's pages take meanwhile."""
    stop = time.monotonic() + size.flood_s
    codes: list[int] = []

    def hammer(i: int):
        c = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get(base + "/login", timeout=10).text).group(1)
        while time.monotonic() < stop:
            codes.append(c.post(base + "/login", data={"name": "bench", "password": f"guess {i} {len(codes)}",
                                                         "csrf_token": token}, timeout=30).status_code)
    threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    answers = round_trips(s, base, ["/api/state", "/"], max(10, size.requests))
    for t in threads:
        t.join(60)
    return {"clients": clients, "seconds": size.flood_s, "attempts": len(codes),
            "refused_429": codes.count(429), "wrong_401": codes.count(401),
            "coordinator_pages_meanwhile": answers}


def tile_files(tmp: Path, db_path: Path, zoom: int) -> float:
    """Every tile to `zoom`, each distinct (small: the lookup is measured, not the bytes)."""
    from tests.web.tilefiles import make_mbtiles, make_pmtiles
    data = {(z, x, y): b"\x89PNG\r\n\x1a\n" + repr((z, x, y)).encode()
            for z in range(zoom + 1) for x in range(1 << z) for y in range(1 << z)}
    make_pmtiles(tmp / "region.pmtiles", data)
    make_mbtiles(tmp / "region.mbtiles", data)
    t0 = time.perf_counter()
    maps.import_file(tmp / "region.pmtiles", db_path, "country")     # converted to MBTiles on the way in
    converted_s = time.perf_counter() - t0
    maps.import_file(tmp / "region.mbtiles", db_path, "town")
    return converted_s


def fill(path: Path, size: Sizes) -> None:
    db = dbmod.connect(path)
    migrate(db)
    rng = random.Random(1)
    now = time.time()
    db.execute("BEGIN")
    db.conn.executemany(
        "INSERT INTO nodes (num, node_id, long_name, short_name, first_heard, last_heard, battery_level, lat, lon, fix_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        [(n, f"!{n:08x}", f"Node {n}", f"N{n % 100}", now - 1e6, now - rng.random() * 1e5, rng.randint(5, 100),
          14 + rng.random(), -17 + rng.random(), now) for n in range(1, 201)])
    db.conn.executemany(
        "INSERT INTO packets (received_at, from_num, to_num, packet_id, portnum, port, raw, decode, duplicates, last_seen_at)"
        " VALUES (?,?,?,?,3,'POSITION_APP',?, 'ok', 0, ?)",
        ((now - (size.packets - i), 1 + i % 200, 0xFFFFFFFF, i + 1, b"\x00" * 40, now) for i in range(size.packets)))
    db.conn.executemany(
        "INSERT INTO positions (node_num, source, received_at, lat, lon) VALUES (?,?,?,?,?)",
        ((1 + i % 200, "position_app", now - (size.positions - i) * 3, 14 + rng.random(), -17 + rng.random())
         for i in range(size.positions)))
    rows = []
    for i in range(size.incidents):
        opened = now - (size.incidents - i) * 30
        state = "open" if i >= size.incidents - OPEN else "resolved"
        rows.append((1 + i % 200, opened, opened, state, "registered" if i % 7 else "unregistered",
                     None if state == "open" else "safe", 14.7, -17.4, opened))
    db.conn.executemany(
        "INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust, resolution, lat, lon, fix_at) "
        "VALUES (?,?,?,'alert_app',?,?,?,?,?,?)", rows)
    db.conn.executemany("INSERT INTO events (incident_id, at, actor, action) VALUES (?,?,?,?)",
                        ((i + 1, now - (size.incidents - i) * 30, "wearer", "alert opened") for i in range(size.incidents)))
    users.add(db, "bench", "viewer", "benchmark password", now, "bench")
    db.execute("COMMIT")
    db.conn.close()




def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> int:
    private_files()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="every step, small: checks the benchmark works")
    ap.add_argument("--out", type=Path, help="where to write the results (default: bench/results/console.json; "
                    "a quick run writes only here)")
    args = ap.parse_args()
    size = QUICK if args.quick else Sizes()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.time()
        fill(tmp / "s.db", size)
        pmtiles_import_s = tile_files(tmp, tmp / "s.db", size.map_zoom)
        fill_s = time.time() - t0
        port = free_port()
        cfg = tmp / "station.toml"
        cfg.write_text(f'[storage]\ndatabase = "{tmp / "s.db"}"\n[console]\nport = {port}\n')
        console = start_console(cfg)
        try:
            base = f"http://127.0.0.1:{port}"
            s = logged_in(base, "bench", "benchmark password")
            targets = {"alerts page": "/", "incident page": f"/alerts/{size.incidents - 5}",
                       "api alerts": "/api/alerts", "api incident": f"/api/alerts/{size.incidents - 5}",
                       "api nodes": "/api/nodes", "api status": "/api/status", "api outbox": "/api/outbox",
                       "nodes page": "/nodes", "health page": "/health"}
            rng = random.Random(2)

            def deep_tile(name: str) -> str:
                z = size.map_zoom
                return f"/maps/tiles/{name}/{z}/{rng.randrange(1 << z)}/{rng.randrange(1 << z)}"
            targets[f"tile from PMTiles (zoom {size.map_zoom})"] = lambda: deep_tile("country")
            targets[f"tile from MBTiles (zoom {size.map_zoom})"] = lambda: deep_tile("town")
            timings = {}
            for name, path in targets.items():
                durations = []
                for _ in range(size.requests):
                    r = s.get(base + (path() if callable(path) else path), timeout=30)
                    assert r.status_code == 200, (path, r.status_code)
                    durations.append(float(r.headers["Server-Timing"].split("dur=")[1]))
                timings[name] = {"p50_ms": round(pct(durations, 50), 2), "p95_ms": round(pct(durations, 95), 2)}
            # A new alert reaching an open event stream.
            latencies = []
            for _ in range(size.stream_rounds):
                stream = s.get(base + "/api/stream", stream=True, timeout=10)
                lines = stream.iter_lines(decode_unicode=True)
                next(lines)                                          # "retry: 1000"
                got = threading.Event()

                def reader(lines=lines, got=got):   # bound now: a late reader must not signal the next round
                    for line in lines:
                        if line and line.startswith("event: incident"):
                            got.set()
                            return
                t = threading.Thread(target=reader, daemon=True)
                t.start()
                time.sleep(0.3)
                w = dbmod.connect(tmp / "s.db")
                sent = time.perf_counter()
                w.execute("INSERT INTO events (incident_id, at, actor, action) VALUES (1, ?, 'wearer', 'alert opened')",
                          (time.time(),))
                got.wait(5)
                latencies.append((time.perf_counter() - sent) * 1000)
                w.conn.close()
                stream.close()
            pages = open_pages(s, base, tmp / "s.db", size)
            flood = login_flood(s, base, size)
            rss = peak_rss_mib(console.pid)
        finally:
            console.send_signal(signal.SIGTERM)
            console.wait(10)
    out = {
        "commit": commit(), "quick": args.quick, "sizes": asdict(size),
        "incidents": size.incidents, "packets": size.packets, "map_tiles_per_file": (4 ** (size.map_zoom + 1) - 1) // 3,
        "fill_s": round(fill_s, 1), "pmtiles_import_s": round(pmtiles_import_s, 1),
        "server_time": timings,
        "new_alert_to_open_stream_ms": {"p50": round(statistics.median(latencies), 1),
                                        "max": round(max(latencies), 1)},
        "console_peak_rss_mib": round(rss, 1),
        "open_pages": pages,
        "login_flood": flood,
    }
    out["targets_met"] = {
        "p95_under_100_ms": all(t["p95_ms"] < 100 for t in timings.values()),
        "alert_reaches_browser_under_1_s": max(latencies) < 1000,
        "open_pages_p95_under_100_ms": pages["answers_meanwhile"]["p95_ms"] < 100,
        "login_flood_pages_p95_under_100_ms": flood["coordinator_pages_meanwhile"]["p95_ms"] < 100,
    }
    print(json.dumps(out, indent=2))
    return save(out, args.out, args.quick, "console.json")


if __name__ == "__main__":
    raise SystemExit(main())
