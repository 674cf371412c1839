"""How the virtual radio reaches a host: a pseudo-terminal (as a USB serial radio) or TCP (as a
WiFi radio on port 4403). Both can be unplugged and plugged back in.

The pty is published under a stable path (a symlink, like the udev rule's /dev/meshtastic), so
that a replugged radio reappears where the station looks for it, with a new pty behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import termios
import socket
import threading
import time
import tty
from pathlib import Path

from station.radio.virtual.device import VirtualRadio

log = logging.getLogger(__name__)


class _Port:
    """What both transports share: plugging in again is unplugging (if needed) and plugging."""

    plugged = False

    def plug(self) -> "_Port":
        raise NotImplementedError

    def unplug(self) -> None:
        raise NotImplementedError

    def replug(self) -> "_Port":
        if self.plugged:
            self.unplug()
        return self.plug()

    def close(self) -> None:
        self.unplug()


class PtyPort(_Port):
    """A USB serial radio. We do not keep the pty's terminal side open ourselves, so that the
    radio can tell (by the master's hang-up) whether the host has the port open: a real radio
    cannot, and what it writes to a closed port is lost (the radio is told, and counts it)."""

    carries_console = True

    def __init__(self, radio: VirtualRadio, link: str | os.PathLike):
        self.radio = radio
        self.link = Path(link)
        self._master: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self.plugged = False
        self.hangup_speed: int | None = None

    def plug(self) -> "PtyPort":
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        name = os.ttyname(slave)
        os.close(slave)
        self._master = master
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(name, tmp)
        os.replace(tmp, self.link)
        self._stop.clear()
        self.radio.attach(self)
        self._thread = threading.Thread(target=self._read_loop, args=(master,), name="vradio-pty", daemon=True)
        self._thread.start()
        self.plugged = True
        return self

    def unplug(self) -> None:
        """The USB cable is pulled: the path disappears and the host's reads fail."""
        self.plugged = False
        self._stop.set()
        self.radio.attach(None)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        with self._write_lock:
            if self._master is not None:
                with contextlib.suppress(OSError):
                    os.close(self._master)
            self._master = None
        if self._thread is not None:
            self._thread.join(2)

    def send(self, data: bytes) -> None:
        with self._write_lock:
            fd = self._master
            if fd is None:
                raise OSError("virtual radio unplugged")
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]

    def _read_loop(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        present = False
        idle_speed = None
        while not self._stop.is_set():
            try:
                events = poller.poll(200)
            except (OSError, ValueError):
                return
            hup = any(ev & select.POLLHUP for _, ev in events)
            if hup:
                # The speed the host left the port at: a 1200-baud close is the nRF52 bootloader's
                # "touch" (the master reads the terminal side's settings). A visit too short for
                # this loop to notice still shows as the speed having changed to 1200.
                speed = idle_speed
                with contextlib.suppress(OSError, termios.error):
                    speed = termios.tcgetattr(fd)[4]
                if present or (speed != idle_speed and speed == termios.B1200):
                    present = False
                    self.hangup_speed = speed
                    self.radio.host_present(False)
                idle_speed = speed
                self._stop.wait(0.02)     # no host: the master reports a hang-up until one opens it
                continue
            if not present:
                present = True
                self.radio.host_present(True)
            if not events:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                continue
            if data:
                self.radio.feed(data)

class TcpPort(_Port):
    """One client at a time, as the firmware's TCP API; a new client replaces the old one."""

    carries_console = False
    REBOOT_DOWN_S = 2.0

    def __init__(self, radio: VirtualRadio, port: int = 0, host: str = "127.0.0.1"):
        self.radio = radio
        self.host = host
        self.port = port
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._down_until = 0.0
        self.plugged = False

    def plug(self) -> "TcpPort":
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((self.host, self.port))
        srv.listen(4)
        self.port = srv.getsockname()[1]
        self._server = srv
        self._stop.clear()
        self.radio.attach(self)
        threading.Thread(target=self._accept_loop, args=(srv,), name="vradio-tcp", daemon=True).start()
        self.plugged = True
        return self

    def unplug(self) -> None:
        self.plugged = False
        self._stop.set()
        self.radio.attach(None)
        with self._lock:
            for s in (self._client, self._server):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    with contextlib.suppress(OSError):
                        s.close()
            self._client = self._server = None

    def drop_client(self) -> None:
        """Close the current connection but keep listening (a WiFi hiccup)."""
        with self._lock:
            c, self._client = self._client, None
        if c is not None:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self.radio.client_gone()

    def rebooting(self) -> None:
        """The radio restarts: its WiFi, and the client's connection, go with it for a while."""
        self._down_until = time.monotonic() + self.REBOOT_DOWN_S * self.radio.reboot_scale
        self.drop_client()

    def send(self, data: bytes) -> None:
        with self._lock:
            c = self._client
        if c is None:
            raise OSError("no TCP client")
        c.sendall(data)

    def _accept_loop(self, srv: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                conn.close()                  # still rebooting
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                old, self._client = self._client, conn
            if old is not None:
                with contextlib.suppress(OSError):
                    old.close()
            self.radio.client_connected()
            threading.Thread(target=self._read_loop, args=(conn,), name="vradio-tcp-client", daemon=True).start()

    def _read_loop(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                with self._lock:
                    mine = self._client is conn
                    if mine:
                        self._client = None
                if mine:
                    self.radio.client_gone()
                with contextlib.suppress(OSError):
                    conn.close()
                return
            self.radio.feed(data)
