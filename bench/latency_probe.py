"""Wire-to-commit latency of the station's full path at a steady 10 frames a second.

The radio writes each text frame with the moment it was written inside it; the station (the
same `Station` that `station run` starts) reports when each one is committed.
Usage: python bench/latency_probe.py PORT DATABASE N [cast]
("cast": the demo's bracelets are registered first, so that Amina's frames are a wearer's.)
"""

import json
import sys
import threading
import time
from pathlib import Path

from station.config import validate
from station.daemon import Station


def main() -> None:
    port, database, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if sys.argv[4:] == ["cast"]:
        from station.radio.virtual.bracelets import register_cast
        register_cast(database)
    cfg = validate({"radio": {"port": port}, "storage": {"database": database}, "gpio": {"enabled": False},
                    "receipts": {"enabled": False}}, None, Path(database).parent)
    latencies = []
    done = threading.Event()
    station = Station(cfg).start()

    def observe(packet):
        text = packet.decoded.payload.decode()
        if text.startswith("t="):
            latencies.append((time.time() - float(text[2:].split()[0])) * 1000)
            if len(latencies) == n:
                done.set()

    station.ingest.observer = observe
    station.link.wait_connected(20)
    print("connected", flush=True)
    ok = done.wait(120)
    station.stop()
    order = list(latencies)
    latencies.sort()
    if not ok:
        print(json.dumps({"error": f"only {len(latencies)} of {n}"}), flush=True)
        sys.exit(1)
    pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]  # noqa: E731
    print(json.dumps({"n": n, "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": latencies[-1],
                      "slowest_at": sorted(range(len(order)), key=order.__getitem__)[-5:]}), flush=True)


if __name__ == "__main__":
    main()
