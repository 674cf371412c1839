"""The station reads the radio in chunks, not one byte per system call as the library does."""

from __future__ import annotations

from station.radio.virtual.bracelets import cast

from .conftest import wait_until


def test_reads_take_what_is_waiting_instead_of_one_byte_per_call(harness):
    h = harness("idle", "pty")
    iface = h.station.link._iface
    stream = iface.stream
    calls = []
    real_read = stream.read

    def counting_read(n=1):
        data = real_read(n)
        calls.append(len(data))
        return data
    stream.read = counting_read
    b = cast()["bashir"]
    for i in range(200):
        h.sim.radio.emit_packet(b.telemetry(i % 100, 3.8))
    wait_until(lambda: h.count("SELECT COUNT(*) FROM telemetry") == 200, 10, what="200 frames")
    received = sum(calls)
    assert received > 200 * 20                 # every frame's bytes came through these reads
    assert len(calls) < received / 10          # ...in far fewer calls than bytes
