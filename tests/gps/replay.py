"""Replay a recorded NMEA log through a pseudo-terminal into the station's GPS reader, as gpsd's
gpsfake does: comment lines are the log's header, not device output, and are not sent."""

from __future__ import annotations

import os
import time
import tty
from pathlib import Path

from station.gps import GpsReader, GpsTracker


def device_bytes(log: Path) -> bytes:
    return b"".join(line for line in log.read_bytes().splitlines(keepends=True) if not line.startswith(b"#"))


def replay(log: Path, tmp: Path, timeout: float = 30.0) -> GpsTracker:
    data = device_bytes(log)
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    link = tmp / f"gps-{log.stem}"
    os.symlink(os.ttyname(slave), link)
    tracker = GpsTracker()
    reader = GpsReader(str(link), 9600, tracker).start()
    try:
        deadline = time.monotonic() + timeout
        while not reader.connected:          # pyserial flushes the input when it opens the port
            if time.monotonic() > deadline:
                raise TimeoutError(f"GPS reader did not open {link}: {reader.error}")
            time.sleep(0.01)
        view = memoryview(data)
        while view:
            view = view[os.write(master, view[:4096]):]
        # The last line may lack its newline; the reader holds it until more bytes come.
        os.write(master, b"\r\n")
        while reader.bytes_handled < len(data) + 2:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{log.name}: handled {reader.bytes_handled} of {len(data) + 2} bytes")
            time.sleep(0.005)
        return tracker
    finally:
        reader.stop()
        os.close(master)
        os.close(slave)
        link.unlink()


def summary(tracker: GpsTracker) -> dict:
    st = tracker.state
    fix = st.fix
    last = None
    if fix is not None:
        if st.fix_datetime is not None:
            when = st.fix_datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")
        elif fix.time is not None:
            when = fix.time.strftime("%H:%M:%S.%f").replace(".000000", "")
        else:
            when = None
        last = {"time": when, "lat": round(fix.lat, 7), "lon": round(fix.lon, 7), "sentence": fix.talker + fix.kind}
    return {"last_fix": last, "fixes": st.fixes, "rejects": dict(sorted(st.rejects.items()))}
