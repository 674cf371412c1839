"""The stream framing, as the firmware and the library frame and resynchronise."""

from __future__ import annotations

from hypothesis import given, strategies as st

from station.radio import framing


def test_frames_split_across_reads_are_reassembled():
    data = framing.encode(b"hello") + framing.encode(b"") + framing.encode(b"x" * 512)
    d = framing.FrameDecoder()
    out = []
    for i in range(0, len(data), 3):
        out += d.feed(data[i:i + 3])
    assert out == [b"hello", b"", b"x" * 512]


def test_bytes_outside_frames_are_console_noise():
    d = framing.FrameDecoder()
    assert d.feed(b"DEBUG | boot\r\n" + framing.encode(b"a") + b"\x94\x00junk" + framing.encode(b"b")) == [b"a", b"b"]
    assert d.noise_bytes == len(b"DEBUG | boot\r\n") + len(b"\x94\x00junk")


def test_oversized_length_is_dropped_and_the_decoder_resyncs():
    d = framing.FrameDecoder()
    assert d.feed(bytes([0x94, 0xC3, 0x02, 0x58]) + b"y" * 20 + framing.encode(b"ok")) == [b"ok"]
    assert d.oversized == 1


@given(st.lists(st.binary(max_size=512), max_size=8), st.binary(max_size=64))
def test_any_frames_survive_being_fed_byte_by_byte(payloads, noise):
    noise = noise.replace(b"\x94", b"")
    data = b"".join(noise + framing.encode(p) for p in payloads)
    d = framing.FrameDecoder()
    out = []
    for i in range(len(data)):
        out += d.feed(data[i:i + 1])
    assert out == payloads


@given(st.binary(max_size=2048))
def test_random_bytes_never_raise_and_never_yield_oversized_frames(data):
    assert all(len(p) <= framing.MAX_PAYLOAD for p in framing.FrameDecoder().feed(data))
