"""A technician's own connection to the station's radio, for when the daemon is not running.

Opening the port starts a handshake, and after it the radio hands over every packet it kept for
its host (8 or 32): an alert among them must not vanish into a command-line tool. So the session
runs the daemon's own ingest path (decode, classify, durable commit, incidents); only receipts
and the alarm wait for the daemon, which finds the incident open when it starts.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from station.clock import StationClock
from station.decode.packets import Rules
from station.ingest import Ingest
from station.pins import PinPolicy
from station.radio.link import LinkSettings, RadioLink
from station.radio.ports import RadioUnavailable, check_serial_path, parse_tcp, resolve_port
from station.storage.writer import Writer


@contextlib.contextmanager
def _connected(port: str, sink, settings: LinkSettings, what: str, made=lambda link: None) -> Iterator[RadioLink]:
    if parse_tcp(port) is None:
        check_serial_path(port)     # at once, with the operator's remedy, rather than after a timeout
    link = RadioLink(port, sink, settings)
    made(link)                      # before the first packet can arrive
    link.start()
    try:
        timeout = settings.handshake_timeout_s + 5
        if not link.wait_connected(timeout) or link.radio_info is None:
            raise RadioUnavailable(f"the {what} on {port} did not complete a handshake within {timeout:.0f} s"
                                   + (f": {link.state.error}" if link.state.error else ""))
        yield link
    finally:
        link.stop()


@contextlib.contextmanager
def radio_session(cfg) -> Iterator[RadioLink]:
    port = resolve_port(cfg.radio["port"])
    if port == "sim":
        raise RadioUnavailable("no radio is plugged in (nothing at /dev/meshtastic, no USB serial port of a known radio) and [radio] port is "
                               f"{cfg.radio['port']!r}: plug the radio in, or set [radio] port")
    writer = Writer(cfg.database_path, cfg.storage["batch_max"], cfg.storage["commit_window_ms"] / 1000).start()
    own: list[RadioLink] = []
    try:
        ingest = Ingest(writer, Rules(tuple(cfg.alerts["keywords"]), tuple(cfg.alerts["cancel_keywords"]),
                                 (cfg.watch["checkin_word"],)),
                        StationClock(cfg.gps["clock_margin_s"]), fold_window_s=cfg.alerts["fold_window_s"],
                        own_node=lambda: own[0].state.node_num if own else None,
                        office_channel=lambda i: bool(own and own[0].radio_info and own[0].radio_info.office_channel(i)),
                        pin_key=PinPolicy.of(cfg).key)
        try:
            with _connected(port, ingest, LinkSettings.from_config(cfg.radio), "radio", own.append) as link:
                yield link
        finally:
            ingest.stop()          # a cancel heard meanwhile is checked and written before the writer stops
    finally:
        writer.stop()


class _Drop:
    """A bracelet on the bench is not the station's radio: what it heard is not stored."""

    def on_packet(self, packet, problem=None) -> None:
        pass

    def on_bad_frame(self, raw, reason) -> None:
        pass

    def on_log_line(self, line) -> None:
        pass


@contextlib.contextmanager
def bench_session(port: str, cfg) -> Iterator[RadioLink]:
    """A device on the technician's bench (a bracelet to provision), not the station's radio."""
    with _connected(port, _Drop(), LinkSettings.from_config(cfg.radio), "device") as link:
        yield link
