"""The radio link: the official meshtastic interface, kept alive by a supervisor.

What the library does not do, and this does (see shared/notes/meshtastic-library.md):
- reconnect after unplug, crash or TCP loss, with capped exponential backoff;
- detect a hung radio (port open, silent) by its own heartbeats, within `liveness_timeout_s`
  plus one heartbeat period, and restart the link;
- no 30 s handshake wait and no auto-detected port or `sys.exit`: the path is always given,
  checked first, and the handshake timeout is ours;
- `close()` after a lost link is guarded, and the library's own 300 s heartbeat timer (a
  non-daemon thread that leaked on close) is never started;
- frames the library cannot decode are still handed over, raw, instead of vanishing in its
  reader thread.
Callbacks on the library's publishing thread only hand the packet to the sink.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

import serial
from meshtastic.mesh_interface import MeshInterface
from meshtastic.protobuf import mesh_pb2
from meshtastic.serial_interface import SerialInterface
from meshtastic.tcp_interface import TCPInterface
from pubsub import pub

from station.logs import event
from station.radio.ports import RadioUnavailable, check_serial_path, describe_serial_error, parse_tcp

log = logging.getLogger(__name__)
RAW = logging.getLogger("station.rawframes")


class PacketSink(Protocol):
    def on_packet(self, packet: mesh_pb2.MeshPacket, problem: str | None = None) -> None: ...
    def on_bad_frame(self, raw: bytes, reason: str) -> None: ...
    def on_log_line(self, line: str) -> None: ...


class LinkDown(Exception):
    """The radio is not connected; nothing was sent."""


@dataclass(frozen=True)
class LinkSettings:
    heartbeat_s: float = 15.0
    liveness_timeout_s: float = 45.0
    handshake_timeout_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    @classmethod
    def from_config(cls, radio: dict) -> "LinkSettings":
        return cls(**{k: float(radio[k]) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class LinkState:
    status: str = "starting"          # starting, connecting, connected, down, stopped
    port: str = ""
    error: str = ""
    since: float = field(default_factory=time.time)
    connects: int = 0
    hangs: int = 0
    node_num: int | None = None


class _StationInterface:
    """Mixed into the library's interfaces; `_station_link` is set before __init__ runs."""

    _station_link: "RadioLink"
    _station_rx: bytearray | None = None

    def _readBytes(self, length):  # noqa: N802
        """The library's reader asks for one byte per call, each a system call that also drops
        and retakes the GIL (~50 per frame), which the writer thread then contends for. Read what
        is waiting in one call and serve the reader from a buffer; its framing is unchanged."""
        buf = self._station_rx
        if not buf:
            chunk = super()._readBytes(self._station_chunk())
            if not chunk:
                return chunk  # None or b"": the library's own meaning (timeout, closed socket)
            buf = self._station_rx = bytearray(chunk)
        out = bytes(buf[:length])
        del buf[:length]   # cheap: bytearray drops its head without copying the rest
        return out

    def _station_chunk(self) -> int:
        stream = getattr(self, "stream", None)
        if stream is None:
            return 4096  # TCP: recv returns what is there
        try:
            # A serial read of n blocks until n bytes or the timeout: ask for what is waiting.
            return max(1, min(4096, stream.in_waiting))
        except (OSError, TypeError, AttributeError):
            return 1

    def _handleFromRadio(self, fromRadioBytes):  # noqa: N802 (library's name)
        link = self._station_link
        link.last_rx = time.monotonic()
        raw = bytes(fromRadioBytes)
        if RAW.isEnabledFor(logging.DEBUG):
            RAW.debug("%s", raw.hex())
        # Parsed here as well as in the library (0.3 us of a frame's ~180 us): a frame that does not
        # parse is counted without the traceback the library prints to stderr, and a packet whose
        # payload the library then fails on can still be handed over below.
        try:
            parsed = mesh_pb2.FromRadio.FromString(raw)
        except Exception as e:
            link.sink.on_bad_frame(raw, f"FromRadio does not parse: {e}"[:200])
            return
        try:
            super()._handleFromRadio(fromRadioBytes)
        except Exception as e:
            # The library raised before publishing (a payload it could not decode): the packet
            # would be lost, so it is handed over raw with the reason.
            if parsed.HasField("packet"):
                link.sink.on_packet(parsed.packet, problem=f"library: {type(e).__name__}: {e}"[:200])
            else:
                link.sink.on_bad_frame(raw, f"library: {type(e).__name__}: {e}"[:200])

    def _waitConnected(self, timeout=30.0):  # noqa: N802
        return super()._waitConnected(self._station_link.settings.handshake_timeout_s)

    def _startHeartbeat(self):  # noqa: N802
        """Heartbeats are the supervisor's job (it also checks the answers)."""


class StationSerialInterface(_StationInterface, SerialInterface):
    pass


class StationTCPInterface(_StationInterface, TCPInterface):
    pass


class RadioLink:
    def __init__(self, port: str, sink: PacketSink, settings: LinkSettings = LinkSettings(),
                 on_state: Callable[[LinkState], None] | None = None):
        self.port = port
        self.sink = sink
        self.settings = settings
        self.on_state = on_state or (lambda s: None)
        self.state = LinkState(port=port)
        self.last_rx = 0.0
        self.alive_at = time.monotonic()
        self._iface: MeshInterface | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="radio-supervisor", daemon=True)
        # pubsub holds weak references: these bound methods live as long as this object.
        pub.subscribe(self._on_receive, "meshtastic.receive")
        pub.subscribe(self._on_lost, "meshtastic.connection.lost")
        pub.subscribe(self._on_log_line, "meshtastic.log.line")

    # -- pubsub callbacks: on the library's publishing thread; hand over and return ---------------
    def _mine(self, interface) -> bool:
        return getattr(interface, "_station_link", None) is self

    def _on_receive(self, packet, interface) -> None:
        if self._mine(interface) and "raw" in packet:
            self.sink.on_packet(packet["raw"])

    def _on_lost(self, interface) -> None:
        if self._mine(interface):
            self._lost.set()

    def _on_log_line(self, line, interface) -> None:
        if self._mine(interface):
            self.sink.on_log_line(line)

    # -- control -------------------------------------------------------------------------------
    def start(self) -> "RadioLink":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._lost.set()
        self._thread.join(timeout)
        self._set_state(status="stopped")
        for fn, topic in ((self._on_receive, "meshtastic.receive"), (self._on_lost, "meshtastic.connection.lost"),
                          (self._on_log_line, "meshtastic.log.line")):
            try:
                pub.unsubscribe(fn, topic)
            except Exception:
                pass

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return self.state.status == "connected"

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected:
                return True
            time.sleep(0.05)
        return self.connected

    def send_text(self, num: int, text: str, want_ack: bool = True) -> int:
        """Send a direct message; returns its packet id. Raises LinkDown at once when down."""
        iface = self._iface
        if iface is None or not self.connected:
            raise LinkDown(f"radio link is {self.state.status}")
        with self._send_lock:
            try:
                p = iface.sendText(text, destinationId=num, wantAck=want_ack)
            except Exception as e:
                raise LinkDown(f"send failed: {e}") from e
        return p.id

    # -- the supervisor thread ----------------------------------------------------------------------
    def _set_state(self, **changes) -> None:
        if "status" in changes and changes["status"] != self.state.status:
            changes.setdefault("since", time.time())
        self.state = replace(self.state, **changes)
        try:
            self.on_state(self.state)
        except Exception:
            log.exception("link state listener failed")

    def _run(self) -> None:
        delay = self.settings.reconnect_min_s
        while not self._stop.is_set():
            self.alive_at = time.monotonic()
            self._set_state(status="connecting")
            try:
                self._connect()
            except RadioUnavailable as e:
                if self.state.error != str(e):
                    event(log, "radio.unavailable", logging.WARNING, str(e), port=self.port)
                self._set_state(status="down", error=str(e))
                self._wait(delay)
                delay = min(delay * 2, self.settings.reconnect_max_s)
                continue
            delay = self.settings.reconnect_min_s
            reason = self._watch()
            self._teardown()
            if reason != "stop":
                event(log, "radio.lost", logging.WARNING, f"radio link {reason}; reconnecting", port=self.port,
                      reason=reason.split(" ")[0])
                self._set_state(status="down", error=reason)
                self._wait(self.settings.reconnect_min_s)

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            self.alive_at = time.monotonic()
            self._stop.wait(min(0.5, max(0.0, end - time.monotonic())))

    def _connect(self) -> None:
        self._lost.clear()
        self.last_rx = time.monotonic()
        tcp = parse_tcp(self.port)
        cls = StationTCPInterface if tcp else StationSerialInterface
        if not tcp:
            check_serial_path(self.port)
        iface = cls.__new__(cls)
        iface._station_link = self
        try:
            if tcp:
                iface.__init__(tcp[0], portNumber=tcp[1], timeout=int(self.settings.handshake_timeout_s) or 1)
            else:
                iface.__init__(devPath=self.port, timeout=int(self.settings.handshake_timeout_s) or 1)
        except MeshInterface.MeshInterfaceError as e:
            self._teardown_iface(iface)
            raise RadioUnavailable(
                f"radio at {self.port} did not answer the handshake within "
                f"{self.settings.handshake_timeout_s:g} s (hung, rebooting, or not a Meshtastic device?)") from e
        except serial.SerialException as e:
            self._teardown_iface(iface)
            raise RadioUnavailable(describe_serial_error(self.port, e)) from e
        except OSError as e:
            self._teardown_iface(iface)
            what = f"radio at {self.port}"
            raise RadioUnavailable(f"{what}: {e.strerror or e}") from e
        self._iface = iface
        node = iface.myInfo.my_node_num if iface.myInfo else None
        event(log, "radio.connected", logging.INFO, f"radio connected on {self.port}", port=self.port,
              node=f"!{node or 0:08x}")
        self._set_state(status="connected", error="", connects=self.state.connects + 1, node_num=node)

    def _watch(self) -> str:
        next_heartbeat = time.monotonic() + self.settings.heartbeat_s
        while True:
            now = time.monotonic()
            self.alive_at = now
            if self._stop.is_set():
                return "stop"
            if self._lost.is_set():
                return "lost (port closed or unplugged)"
            if now - self.last_rx > self.settings.liveness_timeout_s:
                self._set_state(hangs=self.state.hangs + 1)
                return f"hung (no answer for {now - self.last_rx:.0f} s)"
            if now >= next_heartbeat:
                next_heartbeat = now + self.settings.heartbeat_s
                if not self._heartbeat():
                    return "lost (heartbeat could not be written)"
            self._lost.wait(min(0.25, self.settings.heartbeat_s))

    def _heartbeat(self) -> bool:
        iface = self._iface
        if iface is None:
            return False
        msg = mesh_pb2.ToRadio(heartbeat=mesh_pb2.Heartbeat())
        try:
            # Straight to the wire: the library's send queue can wait for free space forever.
            iface._sendToRadioImpl(msg)
            return True
        except Exception as e:
            log.debug("heartbeat write failed: %s", e)
            return False

    def _teardown(self) -> None:
        iface, self._iface = self._iface, None
        if iface is not None:
            self._teardown_iface(iface)

    @staticmethod
    def _teardown_iface(iface: MeshInterface) -> None:
        """close() races the reader thread after a lost link (termios/TypeError in the notes'
        measurements): run it guarded, bounded in time, and never let it raise."""
        timer = getattr(iface, "heartbeatTimer", None)
        if timer is not None:
            timer.cancel()

        def _close() -> None:
            try:
                iface.close()
            except Exception as e:
                log.debug("radio close after loss raised %s (ignored)", type(e).__name__)

        t = threading.Thread(target=_close, name="radio-close", daemon=True)
        t.start()
        t.join(5)
