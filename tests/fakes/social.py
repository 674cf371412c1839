"""Local fake X API v2, Mastodon and webhook servers over real HTTP, behaving like the platforms
where it matters to the relay: duplicate content refused (X, 403), rate limits (429 with reset
headers), server errors, answers that stall past the client's timeout (after the post was
accepted, as happens for real), Mastodon's Idempotency-Key, and going down and coming back.

Every request is logged and every accepted post counted, so tests can prove "never twice".
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Post:
    id: str
    text: str
    reply_to: str | None
    key: str | None
    at: float
    deleted: bool = False


@dataclass
class Fault:
    status: int = 0            # answer with this status instead
    stall_s: float = 0.0       # accept the post, then answer only after this long
    reset_in_s: float = 60.0   # for 429
    # Accept the post, then answer with this raw body (and odd_status if given): an answer that
    # proves nothing about the post (a proxy's page, a body that is not what the API documents).
    odd_body: bytes | None = None
    odd_status: int = 0
    odd_type: str = "text/html"


class FakePlatform:
    kind = "x"

    def __init__(self, port: int = 0, secret: str = ""):
        self.port = port
        self.secret = secret
        self.posts: list[Post] = []
        self.requests: list[tuple[str, str]] = []
        self.request_times: list[float] = []   # time.time() of each request, in order
        self.faults: deque[Fault] = deque()
        self.keys: dict[str, Post] = {}
        self.rejected_duplicates = 0
        self.delay_s = 0.0             # every post takes this long to be handled (a slow platform)
        self.bad_signatures = 0
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- control ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> "FakePlatform":
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.send_response(200)
                self.end_headers()

            def do_GET(self):
                platform._answer(self, 200, {"ok": True})

            def do_POST(self):
                platform._handle(self, "POST")

            def do_DELETE(self):
                platform._handle(self, "DELETE")

        srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        srv.daemon_threads = True
        self.port = srv.server_address[1]
        self._server = srv
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def down(self) -> None:
        """The platform (or the internet) is gone: connections are refused."""
        srv, self._server = self._server, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()

    def fail_next(self, n: int = 1, **fault) -> None:
        for _ in range(n):
            self.faults.append(Fault(**fault))

    @property
    def live_posts(self) -> list[Post]:
        return [p for p in self.posts if not p.deleted]

    def texts(self) -> list[str]:
        return [p.text for p in self.posts]

    # -- serving -------------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the client gave up (its timeout): the post, if any, stays accepted

    def _body(self, h: BaseHTTPRequestHandler) -> tuple[bytes, dict] | None:
        expected = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(expected)
        if len(raw) < expected:
            return None   # the client died mid-request: a real platform accepts nothing from it
        if "json" in (h.headers.get("Content-Type") or ""):
            return raw, json.loads(raw or b"{}")
        return raw, {k: v[0] for k, v in parse_qs(raw.decode()).items()}

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        got = self._body(h)
        if got is None:
            with self._lock:
                self.requests.append((method, h.path + " (aborted)"))
                self.request_times.append(time.time())
            return
        raw, body = got
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.requests.append((method, h.path))
            self.request_times.append(time.time())
            fault = self.faults.popleft() if self.faults else None
        if fault and fault.status:
            if fault.status == 429:
                return self._answer(h, 429, {"title": "Too Many Requests"}, self._reset_headers(fault.reset_in_s))
            return self._answer(h, fault.status, {"error": "fault"})
        status, answer = self.route(h, method, raw, body)
        if fault and fault.stall_s:
            time.sleep(fault.stall_s)
        if fault and fault.odd_body is not None:
            return self._raw(h, fault.odd_status or status, fault.odd_body, fault.odd_type)
        self._answer(h, status, answer)

    def _raw(self, h: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _reset_headers(self, reset_in_s: float) -> dict:
        return {"x-rate-limit-reset": str(int(time.time() + reset_in_s))}

    def route(self, h, method, raw, body) -> tuple[int, dict]:
        raise NotImplementedError


class FakeX(FakePlatform):
    """POST /2/tweets, DELETE /2/tweets/:id — as X API v2."""

    def route(self, h, method, raw, body):
        if method == "DELETE" and h.path.startswith("/2/tweets/"):
            tid = h.path.rsplit("/", 1)[1]
            with self._lock:
                for p in self.posts:
                    if p.id == tid:
                        p.deleted = True
                        return 200, {"data": {"deleted": True}}
            return 404, {"title": "Not Found Error"}
        if method == "POST" and h.path == "/2/tweets":
            auth = h.headers.get("Authorization") or ""
            if not auth.startswith("OAuth ") or "oauth_consumer_key=" not in auth or "oauth_signature=" not in auth:
                return 401, {"title": "Unauthorized"}
            text = body.get("text", "")
            reply = (body.get("reply") or {}).get("in_reply_to_tweet_id")
            with self._lock:
                if any(p.text == text and not p.deleted for p in self.posts):
                    self.rejected_duplicates += 1
                    return 403, {"detail": "You are not allowed to create a Tweet with duplicate content.",
                                 "title": "Forbidden", "status": 403}
                post = Post(str(next(self._ids)), text, reply, None, time.time())
                self.posts.append(post)
            return 201, {"data": {"id": post.id, "text": text}}
        return 404, {"title": "Not Found Error"}


class FakeMastodon(FakePlatform):
    """POST /api/v1/statuses (Idempotency-Key honoured for an hour), DELETE /api/v1/statuses/:id."""

    kind = "mastodon"

    def _reset_headers(self, reset_in_s: float) -> dict:
        reset = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + reset_in_s))
        return {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}

    def _status(self, p: Post) -> dict:
        return {"id": p.id, "url": f"{self.url}/@station/{p.id}", "uri": f"{self.url}/statuses/{p.id}",
                "content": f"<p>{p.text}</p>", "visibility": "public", "in_reply_to_id": p.reply_to,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(p.at))}

    def route(self, h, method, raw, body):
        if not (h.headers.get("Authorization") or "").startswith("Bearer "):
            return 401, {"error": "The access token is invalid"}
        if method == "DELETE" and h.path.startswith("/api/v1/statuses/"):
            sid = h.path.rsplit("/", 1)[1]
            with self._lock:
                for p in self.posts:
                    if p.id == sid and not p.deleted:
                        p.deleted = True
                        return 200, self._status(p)
            return 404, {"error": "Record not found"}
        if method == "POST" and h.path == "/api/v1/statuses":
            key = h.headers.get("Idempotency-Key")
            text = body.get("status", "")
            if len(text) > 500:
                return 422, {"error": "Validation failed: Text character limit of 500 exceeded"}
            with self._lock:
                if key and key in self.keys and time.time() - self.keys[key].at < 3600:
                    return 200, self._status(self.keys[key])
                post = Post(str(next(self._ids)), text, body.get("in_reply_to_id"), key, time.time())
                self.posts.append(post)
                if key:
                    self.keys[key] = post
            return 200, self._status(post)
        return 404, {"error": "Not found"}


class FakeWebhook(FakePlatform):
    """A receiver that checks the HMAC signature and drops repeated idempotency keys."""

    kind = "webhook"

    def _reset_headers(self, reset_in_s: float) -> dict:
        return {"Retry-After": str(int(reset_in_s))}

    def route(self, h, method, raw, body):
        ts = h.headers.get("X-Station-Timestamp", "")
        expected = "sha256=" + hmac.new(self.secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, h.headers.get("X-Station-Signature", "")):
            self.bad_signatures += 1
            return 401, {"error": "bad signature"}
        key = h.headers.get("Idempotency-Key")
        with self._lock:
            if key in self.keys:
                return 200, {"id": self.keys[key].id}
            post = Post(str(next(self._ids)), body.get("text") or "", body.get("reply_to"), key, time.time())
            if body.get("event") == "delete":
                post.deleted = True
            self.posts.append(post)
            self.keys[key] = post
        return 200, {"id": post.id}
