"""The Meshtastic stream framing: 0x94 0xC3, a big-endian length, then a protobuf.

Both directions use it. The decoder mirrors the firmware and the Python library: bytes
outside a frame are the device's debug console, and a length over 512 drops the header and
resynchronises on the next start byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

START1 = 0x94
START2 = 0xC3
MAX_PAYLOAD = 512


def encode(payload: bytes) -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError("frame payload longer than 65535 bytes cannot be encoded")
    return bytes([START1, START2, len(payload) >> 8, len(payload) & 0xFF]) + payload


@dataclass
class FrameDecoder:
    """Incremental decoder: `feed(bytes)` returns the complete payloads found so far."""

    noise_bytes: int = 0
    oversized: int = 0
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        buf = self._buf
        buf += data
        i = 0
        while True:
            start = buf.find(START1, i)
            if start < 0:
                self.noise_bytes += len(buf) - i
                buf.clear()
                i = 0
                break
            self.noise_bytes += start - i
            if len(buf) - start < 4:
                del buf[:start]
                i = 0
                break
            if buf[start + 1] != START2:
                self.noise_bytes += 1
                i = start + 1
                continue
            length = (buf[start + 2] << 8) | buf[start + 3]
            if length > MAX_PAYLOAD:
                self.oversized += 1
                i = start + 2
                continue
            end = start + 4 + length
            if len(buf) < end:
                del buf[:start]
                i = 0
                break
            out.append(bytes(buf[start + 4:end]))
            i = end
        if i and buf:
            del buf[:i]
        return out
