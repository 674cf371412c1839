"""Limits on the console's login, so that nobody on the office network can slow the station down
or try passwords fast: per client, a number of attempts in a window; for everyone, one password
check at a time (scrypt takes 32 MiB and tens of milliseconds of a core the daemon needs too).
Times are monotonic: a wall clock that jumps at boot must not lift or extend a limit."""

from __future__ import annotations

import collections
import contextlib
import threading
import time

from station import users


class Busy(Exception):
    """Too many logins at once or from this client: answered 429, without a password check."""


class LoginGuard:
    def __init__(self, per_client: int = 10, window_s: float = 300.0, wait_s: float = 3.0,
                 clock=time.monotonic):
        self.per_client = per_client
        self.window_s = window_s
        self.wait_s = wait_s
        self.clock = clock
        self._seen: dict[str, collections.deque] = {}
        self._lock = threading.Lock()
        self._checking = threading.Semaphore(1)
        # What an unknown name's password is checked against: the same work as a real account's.
        self.decoy = users.hash_password("decoy for names that do not exist")

    def admit(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            seen = self._seen.setdefault(client, collections.deque())
            while seen and now - seen[0] > self.window_s:
                seen.popleft()
            if len(seen) >= self.per_client:
                raise Busy(f"{self.per_client} login attempts in {self.window_s / 60:.0f} minutes")
            seen.append(now)
            if len(self._seen) > 10_000:        # a scan of made-up addresses must not grow this forever
                for key in [k for k, v in self._seen.items() if not v or now - v[-1] > self.window_s]:
                    del self._seen[key]

    @contextlib.contextmanager
    def checking(self):
        if not self._checking.acquire(timeout=self.wait_s):
            raise Busy("too many logins at once")
        try:
            yield
        finally:
            self._checking.release()
