"""The narrow interface every destination implements, and the outcomes the worker acts on.

The one distinction that matters for "never post twice": did the request possibly reach the
platform? A refused connection did not (`Transient`, safe to retry); a timeout after sending,
or a connection cut before the answer, might have (`Uncertain`: never retried automatically).
"""

from __future__ import annotations

import time

from dataclasses import dataclass
from typing import Protocol

import requests
import urllib3


@dataclass(frozen=True)
class Posted:
    remote_id: str
    url: str | None = None


class Outcome(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Permanent(Outcome):
    """The platform refused for good (4xx other than 429): never retried."""


class Transient(Outcome):
    """Nothing was posted (refused connection, 5xx): retried with backoff. `reached` says whether
    the platform answered at all; attempts that never left this machine do not use up the row's
    attempts, so a flapping link cannot make an alert fail."""

    def __init__(self, reason: str, reached: bool = True):
        super().__init__(reason)
        self.reached = reached


class RateLimited(Outcome):
    """`wait_s`: how long the platform asks us to wait, a duration taken on receipt (a reset time
    is the platform's clock; ours may be hours off at boot, or jump)."""

    def __init__(self, reason: str, wait_s: float | None):
        super().__init__(reason)
        self.wait_s = None if wait_s is None else max(0.0, wait_s)


def wait_until_reset(reset_epoch: float | None, response=None) -> float | None:
    """A platform's reset time as a duration: against the Date of its own answer when it gives
    one (both are its clock), else against ours."""
    if reset_epoch is None:
        return None
    now = None
    date = getattr(response, "headers", {}).get("Date") if response is not None else None
    if date:
        import email.utils
        try:
            now = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            now = None
    return float(reset_epoch) - (time.time() if now is None else now)


class Uncertain(Outcome):
    """The request may have been posted: a person must check before anything is sent again."""


class Destination(Protocol):
    name: str
    # How long a repeated idempotency key returns the first post instead of a second one; None
    # when the platform offers no such key. Within it, a post that may have gone out is repeated.
    idempotency_window_s: float | None

    def post(self, text: str, *, key: str, reply_to: str | None) -> Posted: ...
    def delete(self, remote_id: str) -> None: ...
    def probe_url(self) -> str | None: ...


def network_outcome(exc: BaseException) -> Outcome:
    """Classify a transport failure by whether the request can have left this machine."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (requests.ConnectTimeout, urllib3.exceptions.NewConnectionError,
                             urllib3.exceptions.NameResolutionError, ConnectionRefusedError)):
            return Transient(f"could not connect: {type(seen).__name__}", reached=False)
        if isinstance(seen, urllib3.exceptions.MaxRetryError) and isinstance(
                seen.reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)):
            return Transient(f"could not connect: {type(seen.reason).__name__}", reached=False)
        if isinstance(seen, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError)):
            return Uncertain("no answer before the timeout: the post may have been published")
        seen = seen.__cause__ or seen.__context__ or (seen.args[0] if seen.args and
                                                      isinstance(seen.args[0], BaseException) else None)
    return Uncertain(f"connection broke during the request ({type(exc).__name__}): the post may have been published")


class TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Adds a timeout to every request, and can send a fixed host's requests elsewhere (tweepy
    posts to a hard-coded https://api.twitter.com with no timeout)."""

    def __init__(self, timeout_s: float, rewrite: tuple[str, str] | None = None):
        super().__init__(max_retries=0)
        self.timeout_s = timeout_s
        self.rewrite = rewrite

    def send(self, request, **kwargs):
        kwargs["timeout"] = self.timeout_s
        if self.rewrite and request.url.startswith(self.rewrite[0]):
            request.url = self.rewrite[1] + request.url[len(self.rewrite[0]):]
        return super().send(request, **kwargs)
