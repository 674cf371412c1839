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
  reader thread;
- the handshake is read for what the radio is (firmware, channels, keys: radio/info.py), and the
  liveness check fits the firmware: a heartbeat where it is answered (2.7.4+), else an admin
  request to the radio itself, which every firmware answers; those answers are ours, not the
  mesh's, and are never handed on;
- refusals the radio reports outside packets (queueStatus.res, ClientNotification) are passed on;
- one lock serialises every write, so that a heartbeat cannot land inside a receipt's frame.
Callbacks on the library's publishing thread only hand the packet to the sink.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

import serial
from meshtastic.mesh_interface import MeshInterface
from meshtastic.protobuf import admin_pb2, mesh_pb2, portnums_pb2
from meshtastic.serial_interface import SerialInterface
from meshtastic.tcp_interface import TCPInterface
from pubsub import pub

from station.logs import event
from station.radio import firmware
from station.radio.info import HandshakeNotes, RadioInfo
from station.radio.ports import RadioUnavailable, check_serial_path, describe_serial_error, parse_tcp

log = logging.getLogger(__name__)
RAW = logging.getLogger("station.rawframes")


class PacketSink(Protocol):
    def on_packet(self, packet: mesh_pb2.MeshPacket, problem: str | None = None) -> None: ...
    def on_bad_frame(self, raw: bytes, reason: str) -> None: ...
    def on_log_line(self, line: str) -> None: ...


@dataclass
class _Answer:
    done: threading.Event = field(default_factory=threading.Event)
    packet: mesh_pb2.MeshPacket | None = None


# PhoneAPI.cpp handleToRadioPacket: a client's POSITION or TELEMETRY packet within TEN_SECONDS_MS
# of the previous one on that port, or a TRACEROUTE within THIRTY_SECONDS_MS, is dropped.
ASK_SPACING_S = {portnums_pb2.PortNum.POSITION_APP: 10.5, portnums_pb2.PortNum.TELEMETRY_APP: 10.5,
                 portnums_pb2.PortNum.TRACEROUTE_APP: 30.5}


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
    status: str = "starting"          # starting, connecting, connected, down, lent, stopped
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
        if parsed.HasField("packet"):
            link.packets_in += 1
        if link._consume(parsed):
            return
        link._observe(parsed)
        try:
            super()._handleFromRadio(fromRadioBytes)
        except Exception as e:
            # The library raised before publishing (a payload it could not decode): the packet
            # would be lost, so it is handed over raw with the reason.
            if parsed.HasField("packet"):
                link.sink.on_packet(parsed.packet, problem=f"library: {type(e).__name__}: {e}"[:200])
            else:
                link.sink.on_bad_frame(raw, f"library: {type(e).__name__}: {e}"[:200])

    def _sendToRadioImpl(self, toRadio):  # noqa: N802
        with self._station_link._write_lock:
            super()._sendToRadioImpl(toRadio)

    def _waitConnected(self, timeout=30.0):  # noqa: N802
        return super()._waitConnected(self._station_link.settings.handshake_timeout_s)

    def _startHeartbeat(self):  # noqa: N802
        """Heartbeats are the supervisor's job (it also checks the answers)."""


class StationSerialInterface(_StationInterface, SerialInterface):
    pass


class StationTCPInterface(_StationInterface, TCPInterface):
    def _reconnect(self):  # noqa: N802
        """The library reconnects a dropped TCP link by itself (tcp_interface.py _reconnect): the
        station then showed "connected" through a radio's reboot while alerts waited, and when the
        drop was met by a write (a heartbeat) it reconnected on the writing thread, whose write
        lock its own handshake then waited for: the supervisor hung for good. The supervisor owns
        reconnection: end this interface and let it count, back off and reconnect."""
        self._wantExit = True
        self._station_link._lost.set()


def _refusal_code(message: str) -> str:
    """What a ClientNotification about one of our packets means (Router.cpp:304-325,
    PhoneAPI.cpp handleToRadioPacket on 2.7.0-2.7.3)."""
    if "Duty cycle" in message:
        return "DUTY_CYCLE_LIMIT"
    if "can only be sent once" in message:
        return "RATE_LIMIT_EXCEEDED"
    return "radio dropped it"


class RadioLink:
    def __init__(self, port: str, sink: PacketSink, settings: LinkSettings = LinkSettings(),
                 on_state: Callable[[LinkState], None] | None = None,
                 on_radio_info: Callable[[RadioInfo], None] | None = None,
                 on_refusal: Callable[[int, str, str], None] | None = None, finder=None):
        self.port = port
        # Where a USB radio is now (radio/finder.py): followed when it comes back elsewhere.
        self.finder = finder
        self.sink = sink
        self.settings = settings
        self.on_state = on_state or (lambda s: None)
        self.on_radio_info = on_radio_info or (lambda info: None)
        self.on_refusal = on_refusal or (lambda packet_id, code, detail: None)
        self.state = LinkState(port=port)
        self.radio_info: RadioInfo | None = None
        self.queue_status: tuple[int, int] | None = None   # (free, size) of the radio's send queue
        self._lent_until = 0.0            # wall clock: the port is lent to a technician's command
        self.probes = 0
        self.packets_in = 0      # mesh packets read from the radio (tests: has the station read all?)
        self._notes = HandshakeNotes()
        self._own_requests: collections.OrderedDict[int, str] = collections.OrderedDict()
        self._answers: dict[int, _Answer] = {}
        self._remote: dict[int, tuple[int, _Answer]] = {}   # our requests to other nodes: id -> (node, answer)
        self._asked_at: dict[int, float] = {}                # port -> monotonic time of our last request
        self._write_lock = threading.Lock()
        self._rng = random.Random()
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
            raw = packet["raw"]
            if getattr(raw, "from") == self.state.node_num and raw.decoded.portnum == portnums_pb2.PortNum.ADMIN_APP:
                return   # our radio's admin answers carry session keys and secrets: never stored
            if self._remote_answer(raw):
                return
            self.sink.on_packet(raw)

    def _remote_answer(self, raw: mesh_pb2.MeshPacket) -> bool:
        """A reply to one of our requests to another node; True when it must not be stored (a
        remote admin answer carries the node's session key, and its keys when asked for them)."""
        rid = raw.decoded.request_id if raw.HasField("decoded") else 0
        waiting = self._remote.get(rid) if rid else None
        if waiting is None:
            return False
        node, answer = waiting
        sender = getattr(raw, "from")
        if raw.decoded.portnum == portnums_pb2.PortNum.ROUTING_APP and sender != node:
            if not mesh_pb2.Routing.FromString(raw.decoded.payload).error_reason:
                return False      # our radio's implicit ACK (a relay repeated it): the reply is still to come
        self._remote.pop(rid, None)
        answer.packet = raw
        answer.done.set()
        return raw.decoded.portnum == portnums_pb2.PortNum.ADMIN_APP

    # -- frames read by the library's reader thread, before the library sees them -----------------
    def _consume(self, fr: mesh_pb2.FromRadio) -> bool:
        """Answers to our own probes and admin requests: ours, not the mesh's."""
        kind = fr.WhichOneof("payload_variant")
        if kind == "queueStatus" and fr.queueStatus.mesh_packet_id in self._own_requests:
            self._note_queue(fr.queueStatus)
            return True
        if kind == "packet" and fr.packet.HasField("decoded") and \
                getattr(fr.packet, "from") == self.state.node_num and fr.packet.decoded.request_id in self._own_requests:
            self._own_requests.pop(fr.packet.decoded.request_id, None)
            answer = self._answers.pop(fr.packet.decoded.request_id, None)
            if answer is not None:
                answer.packet = fr.packet
                answer.done.set()
            return True
        return False

    def _observe(self, fr: mesh_pb2.FromRadio) -> None:
        kind = fr.WhichOneof("payload_variant")
        if kind == "queueStatus":
            qs = fr.queueStatus
            self._note_queue(qs)
            if qs.res and qs.mesh_packet_id:
                self._refused(qs.mesh_packet_id, _error_name(qs.res), "refused by the station's radio")
        elif kind == "clientNotification":
            n = fr.clientNotification
            if n.reply_id:
                self._refused(n.reply_id, _refusal_code(n.message), n.message[:200])
        elif kind == "rebooted":
            self._notes.reset()
        elif self._notes.feed(fr):
            info = self._notes.info(time.time())
            self.radio_info = info
            event(log, "radio.identified", logging.INFO, f"radio firmware {info.firmware} ({info.hw_model})",
                  port=self.port, firmware=info.firmware, hw=info.hw_model, region=info.region, preset=info.preset)
            try:
                self.on_radio_info(info)
            except Exception:
                log.exception("radio info listener failed")

    def _note_queue(self, qs: mesh_pb2.QueueStatus) -> None:
        if qs.maxlen:     # MeshService::sendQueueStatusToPhone: the TX queue's free slots and size
            self.queue_status = (qs.free, qs.maxlen)

    def _refused(self, packet_id: int, code: str, detail: str) -> None:
        waiting = self._remote.pop(packet_id, None)
        if waiting is not None:
            # Our request never left the radio: answer it as a routing error from our own radio.
            err = mesh_pb2.Routing.Error.Value(code) if code in mesh_pb2.Routing.Error.keys() else \
                mesh_pb2.Routing.Error.BAD_REQUEST
            refusal = mesh_pb2.MeshPacket(to=waiting[0], id=0)
            setattr(refusal, "from", self.state.node_num or 0)
            refusal.decoded.portnum = portnums_pb2.PortNum.ROUTING_APP
            refusal.decoded.payload = mesh_pb2.Routing(error_reason=err).SerializeToString()
            refusal.decoded.request_id = packet_id
            waiting[1].packet = refusal
            waiting[1].done.set()
        try:
            self.on_refusal(packet_id, code, detail)
        except Exception:
            log.exception("refusal listener failed")

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

    def send_admin(self, msg: admin_pb2.AdminMessage, *, want_response: bool = True) -> int:
        """An admin message to the station's own radio (no passkey is needed from its own
        port: AdminModule.cpp:131-137). Its answers are swallowed. Returns the packet id."""
        return self._to_own_radio(portnums_pb2.PortNum.ADMIN_APP, msg.SerializeToString(), want_response, "admin")

    def ask_admin(self, msg: admin_pb2.AdminMessage, timeout: float = 10.0) -> mesh_pb2.MeshPacket:
        """An admin message to the station's own radio, waiting for its answer: the AdminMessage
        for a get, a routing ACK (or error) for a set (AdminModule.cpp:558-560). Raises LinkDown
        when the link is down or the radio stays silent for `timeout`."""
        answer = _Answer()
        with self._send_lock:
            packet_id = self._to_own_radio(portnums_pb2.PortNum.ADMIN_APP, msg.SerializeToString(), True,
                                           "admin", answer)
        if not answer.done.wait(timeout):
            self._answers.pop(packet_id, None)
            raise LinkDown(f"the radio did not answer an admin request within {timeout:.0f} s")
        return answer.packet

    def ask_node(self, num: int, port: int, payload: bytes, timeout: float = 60.0) -> mesh_pb2.MeshPacket:
        """A request to another node over the mesh (want_response, reliable), waiting for the
        node's reply, or a routing error from it or from our radio (MAX_RETRANSMIT, NO_CHANNEL,
        PKI_UNKNOWN_PUBKEY...). Raises LinkDown when nothing comes back within `timeout`."""
        iface = self._iface
        if iface is None or not self.connected:
            raise LinkDown(f"radio link is {self.state.status}")
        wait = self._asked_at.get(port, -1e9) + ASK_SPACING_S.get(port, 0.0) - time.monotonic()
        if wait > 0:
            # The radio would drop it (from 2.7.4 without telling): wait the firmware's spacing out.
            self._stop.wait(wait)
        self._asked_at[port] = time.monotonic()
        answer = _Answer()
        p = mesh_pb2.MeshPacket(to=num, id=self._rng.getrandbits(32) or 1, want_ack=True)
        p.decoded.portnum = port
        p.decoded.payload = payload
        p.decoded.want_response = True
        self._remote[p.id] = (num, answer)
        with self._send_lock:
            if not self._write(mesh_pb2.ToRadio(packet=p)):
                self._remote.pop(p.id, None)
                raise LinkDown("the write to the radio failed")
        if not answer.done.wait(timeout):
            self._remote.pop(p.id, None)
            raise LinkDown(f"no answer from !{num:08x} within {timeout:.0f} s")
        return answer.packet

    def announce(self) -> bool:
        """Make the radio broadcast its NodeInfo now, so bracelets learn its key (heartbeat nonce 1,
        PhoneAPI.cpp:225-229, firmware 2.7.23+). False when this firmware cannot."""
        info = self.radio_info
        if info is None or not firmware.nodeinfo_ping(info.firmware):
            return False
        return self._write(mesh_pb2.ToRadio(heartbeat=mesh_pb2.Heartbeat(nonce=1)))

    def _to_own_radio(self, port: int, payload: bytes, want_response: bool, purpose: str,
                      answer: "_Answer | None" = None) -> int:
        iface, own = self._iface, self.state.node_num
        if iface is None or not self.connected or own is None:
            raise LinkDown(f"radio link is {self.state.status}")
        p = mesh_pb2.MeshPacket(to=own, id=self._rng.getrandbits(32) or 1, want_ack=False)
        p.decoded.portnum = port
        p.decoded.payload = payload
        p.decoded.want_response = want_response
        if answer is not None:
            self._answers[p.id] = answer
        self._own_requests[p.id] = purpose
        while len(self._own_requests) > 64:
            self._answers.pop(self._own_requests.popitem(last=False)[0], None)
        if not self._write(mesh_pb2.ToRadio(packet=p)):
            raise LinkDown("the write to the radio failed")
        return p.id

    def _write(self, msg: mesh_pb2.ToRadio) -> bool:
        iface = self._iface
        if iface is None:
            return False
        try:
            # Straight to the wire: the library's send queue can wait for free space forever.
            iface._sendToRadioImpl(msg)
            return True
        except Exception as e:
            log.debug("write to the radio failed: %s", e)
            return False

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
            if self._lent_until > time.time():
                self._lend_wait()
                continue
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
            if reason == "lent":
                self._lend_wait()
            elif reason != "stop":
                event(log, "radio.lost", logging.WARNING, f"radio link {reason}; reconnecting", port=self.port,
                      reason=reason.split(" ")[0])
                self._set_state(status="down", error=reason)
                self._wait(self.settings.reconnect_min_s)

    def lend(self, seconds: float, timeout: float = 15.0) -> bool:
        """Close the port for a technician's command (a restore, a flash) for at most `seconds`;
        True once it is closed. The link comes back by itself when the time is up."""
        self._lent_until = time.time() + seconds
        self._lost.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state.status == "lent":
                return True
            time.sleep(0.05)
        return False

    def take_back(self) -> None:
        self._lent_until = 0.0

    def retarget(self, port: str, finder=None) -> None:
        """Leave the current port for `port` (a real radio plugged in while the station ran on
        the virtual one): the supervisor closes the link and opens the new port."""
        self.port, self.finder = port, finder
        self._set_state(port=port)
        self._lost.set()

    def _lend_wait(self) -> None:
        event(log, "radio.lent", logging.WARNING, "radio port lent to a technician's command", port=self.port)
        self._set_state(status="lent", error="lent to a technician's command")
        while not self._stop.is_set() and time.time() < self._lent_until:
            self.alive_at = time.monotonic()
            self._stop.wait(0.2)
        self._lent_until = 0.0

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end and self._lent_until <= time.time():
            self.alive_at = time.monotonic()
            self._stop.wait(min(0.5, max(0.0, end - time.monotonic())))

    def _connect(self) -> None:
        self._lost.clear()
        self.last_rx = time.monotonic()
        self._notes.reset()
        tcp = parse_tcp(self.port)
        cls = StationTCPInterface if tcp else StationSerialInterface
        if not tcp and self.finder is not None:
            found = self.finder.find()
            if found is None:
                raise RadioUnavailable("no radio found: plug it in (`ls /dev/serial/by-id/` lists serial devices)"
                                       if self.finder.auto else
                                       f"radio port {self.finder.configured} is not present, and the radio is "
                                       "not on another port: is it plugged in?")
            if found != self.port:
                event(log, "radio.port_changed", logging.WARNING, f"the radio is now at {found} (was {self.port})",
                      port=found, was=self.port)
                self.port = found
                self._set_state(port=found)
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
        if self.finder is not None and not tcp:
            self.finder.remember(self.port)
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
            if self._lent_until > time.time():
                return "lent"
            if self._lost.is_set():
                return "lost (port closed or unplugged)"
            if now - self.last_rx > self.settings.liveness_timeout_s:
                self._set_state(hangs=self.state.hangs + 1)
                return f"hung (no answer for {now - self.last_rx:.0f} s)"
            if now >= next_heartbeat:
                next_heartbeat = now + self.settings.heartbeat_s
                if not self._probe():
                    return "lost (heartbeat could not be written)"
            self._lost.wait(min(0.25, self.settings.heartbeat_s))

    def ask_queue_status(self, timeout: float = 2.0) -> tuple[int, int] | None:
        """The radio reports its send queue when it answers a probe; None if it did not."""
        self.queue_status = None
        if self._probe():
            deadline = time.monotonic() + timeout
            while self.queue_status is None and time.monotonic() < deadline:
                time.sleep(0.05)
        return self.queue_status

    def _probe(self) -> bool:
        """Something the radio must answer. A heartbeat where the firmware answers it (2.7.4+);
        older firmware stays silent (PhoneAPI.cpp:216-234), so on a quiet mesh silence would look
        like a hang: ask it for its metadata instead (AdminModule handleGetDeviceMetadata)."""
        self.probes += 1
        info = self.radio_info
        if info is not None and info.answers_heartbeat:
            return self._write(mesh_pb2.ToRadio(heartbeat=mesh_pb2.Heartbeat()))
        try:
            self._to_own_radio(portnums_pb2.PortNum.ADMIN_APP, admin_pb2.AdminMessage(
                get_device_metadata_request=True).SerializeToString(), True, "probe")
            return True
        except LinkDown:
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


def _error_name(code: int) -> str:
    try:
        return mesh_pb2.Routing.Error.Name(code)
    except ValueError:
        return f"error {code}"
