"""One daemon per database: two `station run` on one database would both open the radio, both
send receipts and each think it owns the writer. An advisory lock beside the database (the
kernel drops it when the process dies, even by kill -9), with the holder's pid for the error."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from station.storage.db import StorageError, file_error


class DaemonLock:
    def __init__(self, database: Path):
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> "DaemonLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as e:
            raise StorageError(file_error(self.database, self.path, e)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StorageError(f"another station daemon (pid {holder}) is already running on the database "
                               f"{self.database}; stop it first (systemctl stop station)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)      # closing drops the lock; the file stays (no write on each start)
            self._fd = None
