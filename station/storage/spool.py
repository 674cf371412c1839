"""A second place for what the radio handed over, while the database cannot take it.

Every packet is appended here (in RAM: the runtime folder, /run/station under systemd) before it
is queued for the database, and the file is emptied whenever the writer has committed everything
it was given. So when the card is full, or another process holds the write lock, and the daemon
is then restarted (by an operator, or systemd's watchdog), nothing the radio gave is lost: the next
start replays the spool, and the database's (sender, packet id) uniqueness makes a replay of what
was in fact stored harmless. A reboot empties /run: only a restart of the daemon is covered.

Records: 4-byte big-endian length, 8-byte received-at (float), a byte of flags (1: heard on
the office channel, as the radio said then: a replay at start-up comes before the radio's
handshake), the MeshPacket as stored (a cancel's PIN already masked). The file is bounded (MAX_BYTES): past it only alerts are kept.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from pathlib import Path
from typing import Iterator

from meshtastic.protobuf import mesh_pb2

from station import runtime

log = logging.getLogger(__name__)
MAX_BYTES = 64 * 2**20
_HEAD = struct.Struct(">IdB")
OFFICE = 1


def spool_path(database: Path | str) -> Path:
    return runtime.runtime_file(database, "spool", ".bin")


class Spool:
    def __init__(self, database: Path | str):
        self.path = spool_path(database)
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # None once closed: a descriptor number is reused by the next file opened, so a late call
        # with the old number would write into, or truncate, some other file (the database).
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self._fd).st_size
        self.dropped = 0          # non-alert packets not kept because the spool was full

    def append(self, packet: mesh_pb2.MeshPacket, received_at: float, *, alert: bool,
               office: bool = False) -> int | None:
        """The record's end (what has to be committed for the spool to be emptied), or None when
        it was not kept."""
        data = packet.SerializeToString()
        record = _HEAD.pack(len(data), received_at, OFFICE if office else 0) + data
        with self._lock:
            if self._fd is None:
                log.warning("a packet arrived after the spool %s was closed: not kept there", self.path)
                return None
            if self.size + len(record) > MAX_BYTES and not alert:
                self.dropped += 1
                return None
            try:
                os.write(self._fd, record)
            except OSError as e:          # /run full or gone: the database path still works
                log.warning("could not keep a packet in the spool %s: %s", self.path, e)
                return None
            self.size += len(record)
            return self.size

    def empty_if(self, committed_to: int) -> bool:
        """Empty the spool when everything in it is committed (`committed_to` is the end of the
        newest committed record)."""
        with self._lock:
            if self._fd is None or committed_to < self.size:
                return False
            os.ftruncate(self._fd, 0)
            self.size = 0
            return True

    def records(self) -> Iterator[tuple[mesh_pb2.MeshPacket, float, bool]]:
        """What is in the spool now, oldest first; a cut-short last record is skipped."""
        with self._lock:
            size = self.size if self._fd is not None else 0
            data = os.pread(self._fd, size, 0) if size else b""
        at = 0
        while at + _HEAD.size <= len(data):
            n, received_at, flags = _HEAD.unpack_from(data, at)
            body = data[at + _HEAD.size:at + _HEAD.size + n]
            at += _HEAD.size + n
            if len(body) < n:
                break
            try:
                yield mesh_pb2.MeshPacket.FromString(body), received_at, bool(flags & OFFICE)
            except Exception:
                log.warning("a damaged record in the spool %s was skipped", self.path)

    def count(self) -> int:
        return sum(1 for _ in self.records())

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
