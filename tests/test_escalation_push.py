"""Push channels over real HTTP to local servers that answer as ntfy and Telegram's bot API do
(a message id, a 429 with Retry-After, a refusal): the responder's phone gets the alert, the
station waits as long as the platform asks and never retries what was refused."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from station.escalation.channels import ChannelError, Outgoing
from station.escalation.channels.push import Ntfy, Telegram

MESSAGE = Outgoing(7, 3, "Maria", "ngo-maria", "SOS Amina D. !b5a1e001 03:12, at 14.69370,-17.44410. Reply ACK 3KX", 1)


class Platform:
    """Answers each POST with the next of `answers` (status, headers, body), then 200s."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.got: list[tuple[str, dict, bytes]] = []
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                platform.got.append((self.path, dict(self.headers), body))
                status, headers, reply = platform.answers.pop(0) if platform.answers else (200, {}, None)
                if reply is None:
                    reply = {"id": "msg1"} if self.path.startswith("/ngo") else {"ok": True,
                                                                                 "result": {"message_id": 42}}
                data = json.dumps(reply).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def platform():
    made = []

    def make(answers=()):
        p = Platform(answers)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def test_ntfy_delivers_an_urgent_notification_to_her_topic(platform):
    p = platform()
    assert Ntfy(p.url, token="tk").send(MESSAGE) == "msg1"
    [(path, headers, body)] = p.got
    assert path == "/ngo-maria" and body.decode() == MESSAGE.text
    assert headers["Priority"] == "urgent" and headers["Authorization"] == "Bearer tk"
    assert headers["Title"].startswith("SOS Amina D.") and headers["X-Sequence-ID"] == "station-7"


def test_a_rate_limited_push_waits_as_long_as_the_platform_asks(platform):
    p = platform([(429, {"Retry-After": "42"}, {"error": "limit"})])
    with pytest.raises(ChannelError) as e:
        Ntfy(p.url).send(MESSAGE)
    assert e.value.retry and e.value.wait_s == 42.0


def test_a_refused_push_is_not_retried(platform):
    p = platform([(403, {}, {"error": "forbidden"})])
    with pytest.raises(ChannelError) as e:
        Ntfy(p.url).send(MESSAGE)
    assert not e.value.retry and "403" in e.value.reason


def test_telegram_sends_to_her_chat_and_reports_the_bot_apis_refusal(platform):
    p = platform()
    sent = Telegram(p.url, "123:abc").send(Outgoing(7, 3, "Maria", "-1001", MESSAGE.text, 1))
    assert sent == "42"
    path, _, body = p.got[0]
    assert path == "/bot123:abc/sendMessage" and json.loads(body)["chat_id"] == "-1001"
    q = platform([(200, {}, {"ok": False, "description": "chat not found"})])
    with pytest.raises(ChannelError, match="chat not found"):
        Telegram(q.url, "123:abc").send(MESSAGE)
