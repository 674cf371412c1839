"""Relay benchmark: a backlog of 10,000 outbox rows drained by `station run` against the fake X
and Mastodon servers with a configured rate limit.

Measures: time from the link returning to the first SOS post (target < 5 s), drain rate
against the configured limit (target within 5 %), duplicates (target 0), peak RSS.

    .venv/bin/python bench/relay.py            # writes bench/results/relay.json
    .venv/bin/python bench/relay.py --quick    # 200 rows, writes only to --out (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from measured import commit, peak_rss_mib, private_files, save  # noqa: E402
from station.storage.writer import Writer  # noqa: E402
from tests.fakes.social import FakeMastodon, FakeX  # noqa: E402
from tests.relay.conftest import destinations_toml, secret_files  # noqa: E402

ROWS, QUICK_ROWS = 10_000, 200
SOS = 50                 # the newest rows are alerts, queued behind the rest
RATE_PER_S = 40.0        # per destination


def fill(db_path: Path, rows_n: int) -> None:
    """`rows_n` ready rows: older follow-ups, then 50 SOS alerts (priority 0), split over two
    destinations, each for its own incident."""
    w = Writer(db_path).start()
    now = time.time()

    def rows(db):
        for i in range(rows_n):
            db.execute("INSERT INTO incidents (node_num, opened_at, last_press_at, source, state, trust, drill, "
                       "relay_planned) VALUES (1, ?, ?, 'alert_app', 'open', 'registered', 0, 1)", (now, now))
        for i in range(rows_n):
            sos = i >= rows_n - SOS
            db.execute("INSERT INTO outbox (incident_id, destination, kind, seq, priority, state, text, "
                       "idempotency_key, created_at, updated_at) VALUES (?,?,?,0,?, 'ready', ?, ?, ?, ?)",
                       (i + 1, "x" if i % 2 == 0 else "mastodon", "alert" if sos else "resolution",
                        0 if sos else 1, f"{'SOS' if sos else 'update'} post {i}", uuid.uuid4().hex,
                        now + i * 1e-4, now))
    w.call(rows)
    w.stop()



def main() -> int:
    private_files()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS} rows: checks the benchmark works")
    ap.add_argument("--out", type=Path, help="where to write the results (default: bench/results/relay.json; "
                    "a quick run writes only here)")
    args = ap.parse_args()
    rows_n = QUICK_ROWS if args.quick else ROWS
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        files = secret_files(tmp)
        db_path = tmp / "station.db"
        fill(db_path, rows_n)
        x, mastodon = FakeX(), FakeMastodon()
        x.up(), mastodon.up()
        ports = (x.port, mastodon.port)
        x.down(), mastodon.down()          # the internet is down while the backlog builds
        per_hour = RATE_PER_S * 3600
        cfg = tmp / "station.toml"
        cfg.write_text(f"""
[radio]
port = "sim"
scenario = "idle"
[storage]
database = "{db_path}"
[gpio]
enabled = false
[log]
level = "WARNING"
""" + destinations_toml(f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", files,
                                         rate_per_hour=per_hour))
        station = subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "run"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(4)                      # running, offline, backlog waiting
        x.port, mastodon.port = ports
        link_back = time.time()
        x.up(), mastodon.up()
        first_sos = None
        while len(x.posts) + len(mastodon.posts) < rows_n:
            posts = x.posts + mastodon.posts
            if first_sos is None:
                sos = [p.at for p in posts if p.text.startswith("SOS")]
                if sos:
                    first_sos = min(sos)
            if time.time() - link_back > 900:
                break
            time.sleep(0.05)
        done = time.time()
        rss = peak_rss_mib(station.pid)
        station.send_signal(signal.SIGTERM)
        station.wait(30)
        x.down(), mastodon.down()
        with sqlite3.connect(db_path) as c:
            states = dict(c.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        result = {}
        for name, fake in (("x", x), ("mastodon", mastodon)):
            times = sorted(p.at for p in fake.posts)
            span = times[-1] - times[0] if len(times) > 1 else float("nan")
            result[name] = {"posts": len(fake.posts), "drain_rate_per_s": (len(times) - 1) / span,
                            "configured_rate_per_s": RATE_PER_S,
                            "rate_error_pct": ((len(times) - 1) / span / RATE_PER_S - 1) * 100}
        texts = x.texts() + mastodon.texts()
        out = {
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit": commit(), "quick": args.quick, "rows": rows_n, "outbox_states": states,
            "link_return_to_first_sos_s": (first_sos - link_back) if first_sos else None,
            "total_drain_s": done - link_back,
            "destinations": result,
            "duplicates": len(texts) - len(set(texts)),
            "peak_rss_mib": rss,
        }
        out["targets_met"] = {
            "first_sos_under_5_s": out["link_return_to_first_sos_s"] is not None
            and out["link_return_to_first_sos_s"] < 5,
            "drain_rate_within_5_pct": all(abs(r["rate_error_pct"]) <= 5 for r in result.values()),
            "no_duplicates": out["duplicates"] == 0,
        }
    print(json.dumps(out, indent=2))
    return save(out, args.out, args.quick, "relay.json")


if __name__ == "__main__":
    raise SystemExit(main())
