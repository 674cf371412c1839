"""The bare meshtastic library receiving frames, for comparison: connect, count packets, report.

Usage: python bench/bare_receiver.py PORT N    (PORT: a device path or tcp://HOST:PORT)
Prints one JSON line: throughput and CPU time per frame between the first and the N-th packet.
"""

import json
import sys
import threading
import time

from meshtastic.serial_interface import SerialInterface
from meshtastic.tcp_interface import TCPInterface
from pubsub import pub


def main() -> None:
    port, n = sys.argv[1], int(sys.argv[2])
    done = threading.Event()
    seen = {"count": 0, "t_first": None, "cpu_first": None}

    def on_receive(packet, interface):
        if seen["count"] == 0:
            seen["t_first"], seen["cpu_first"] = time.perf_counter(), time.process_time()
        seen["count"] += 1
        if seen["count"] == n:
            seen["t_last"], seen["cpu_last"] = time.perf_counter(), time.process_time()
            done.set()

    pub.subscribe(on_receive, "meshtastic.receive")
    if port.startswith("tcp://"):
        host, p = port[6:].rsplit(":", 1)
        iface = TCPInterface(host, portNumber=int(p))
    else:
        iface = SerialInterface(port)
    print("connected", flush=True)
    if not done.wait(300):
        print(json.dumps({"error": f"only {seen['count']} of {n} packets"}), flush=True)
        sys.exit(1)
    frames = n - 1
    wall = seen["t_last"] - seen["t_first"]
    cpu = seen["cpu_last"] - seen["cpu_first"]
    print(json.dumps({"frames_per_s": frames / wall, "cpu_us_per_frame": cpu / frames * 1e6,
                      "wall_s": wall}), flush=True)
    try:
        iface.close()
    except Exception:
        pass


if __name__ == "__main__":
    main()
