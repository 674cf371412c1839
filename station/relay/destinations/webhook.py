"""A signed webhook for anything else (Signal, Matrix or e-mail bridges, the NGO's own system).

The body is JSON; `X-Station-Signature: sha256=<hex>` is HMAC-SHA256 over
`<timestamp>.<body>` with the shared secret, and `X-Station-Timestamp` lets the receiver refuse
replays. `Idempotency-Key` lets the receiver drop a repeated delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests

from station.relay.destinations.base import Permanent, Posted, RateLimited, Transient, network_outcome


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookDestination:
    idempotency_window_s = None   # we send a key, but cannot know that the receiver honours it

    def __init__(self, settings):
        self.name = settings.name
        self.url = settings.url
        self.secret = settings.secrets["secret_file"].value
        self.timeout_s = settings.timeout_s
        self.session = requests.Session()

    def probe_url(self) -> str:
        return self.url

    def _send(self, payload: dict, key: str) -> requests.Response:
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Station-Timestamp": ts,
                   "X-Station-Signature": signature(self.secret, ts, body), "Idempotency-Key": key}
        try:
            r = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as e:
            raise network_outcome(e) from None
        if r.status_code == 429:
            retry = r.headers.get("Retry-After")
            raise RateLimited("webhook rate limit (429)", float(retry) if retry and retry.isdigit() else None)
        if r.status_code >= 500:
            raise Transient(f"webhook answered {r.status_code}")
        if r.status_code >= 400:
            raise Permanent(f"webhook refused ({r.status_code}): {r.text[:150]}")
        return r

    def post(self, text: str, *, key: str, reply_to: str | None) -> Posted:
        r = self._send({"event": "post", "text": text, "reply_to": reply_to, "key": key}, key)
        try:
            answer = r.json()
        except ValueError:
            answer = None
        # A receiver may answer with anything (a list, a bare string): it accepted the post (2xx),
        # and the idempotency key names it whatever it says.
        remote = answer.get("id") if isinstance(answer, dict) else None
        return Posted(str(remote or key), None)

    def delete(self, remote_id: str) -> None:
        self._send({"event": "delete", "id": remote_id, "key": f"delete-{remote_id}"}, f"delete-{remote_id}")
