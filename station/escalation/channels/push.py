"""Push over the internet, once the station has it: ntfy (self-hostable: an NGO can run its own
server, and phones with the ntfy app get the alert as an urgent notification) and Telegram's bot
API. Both send at most once per notification (the sender claims it first); a 429 is waited out
for as long as the server asks, which is what keeps the station within the platform's limits."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from station.escalation.channels import ChannelError, Outgoing, read_secret
from station.escalation.texts import subject


def _retry_after(response, default: float = 30.0) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default


def _post(url: str, what: str, timeout: float, **kwargs) -> requests.Response:
    try:
        r = requests.post(url, timeout=timeout, **kwargs)
    except requests.RequestException as e:
        raise ChannelError(f"{what} unreachable: {type(e).__name__}") from None
    if r.status_code == 429:
        raise ChannelError(f"{what}: rate limited (429)", wait_s=_retry_after(r))
    if r.status_code >= 500:
        raise ChannelError(f"{what} answered {r.status_code}")
    if r.status_code >= 400:
        raise ChannelError(f"{what} refused it: {r.status_code} {r.text[:120]}", retry=False)
    return r


@dataclass
class Ntfy:
    url: str
    token: str = ""
    timeout_s: float = 15.0
    name: str = "ntfy"

    @classmethod
    def from_config(cls, cfg) -> "Ntfy":
        p = cfg.push
        token = read_secret(p["ntfy_token_file"], cfg.base_dir, "[push] ntfy_token_file") if p["ntfy_token_file"] else ""
        return cls(p["ntfy_url"].rstrip("/"), token, p["timeout_s"])

    def send(self, message: Outgoing) -> str | None:
        headers = {"Title": subject(message.text).encode("utf-8"), "Priority": "urgent", "Tags": "rotating_light",
                   # The same notification sent twice (a crash mid-send) replaces itself on the phone.
                   "X-Sequence-ID": f"station-{message.id}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        r = _post(f"{self.url}/{message.address}", "ntfy", self.timeout_s, data=message.text.encode("utf-8"),
                  headers=headers)
        try:
            return str(r.json().get("id") or "")
        except ValueError:
            return None

    def close(self) -> None:
        pass


@dataclass
class Telegram:
    api: str
    token: str
    timeout_s: float = 15.0
    name: str = "telegram"

    @classmethod
    def from_config(cls, cfg) -> "Telegram":
        p = cfg.push
        return cls(p["telegram_api"].rstrip("/"),
                   read_secret(p["telegram_token_file"], cfg.base_dir, "[push] telegram_token_file"), p["timeout_s"])

    def send(self, message: Outgoing) -> str | None:
        r = _post(f"{self.api}/bot{self.token}/sendMessage", "Telegram", self.timeout_s,
                  json={"chat_id": message.address, "text": message.text, "disable_web_page_preview": True})
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if not body.get("ok", False):
            raise ChannelError(f"Telegram refused it: {body.get('description', '?')}", retry=False)
        return str(body.get("result", {}).get("message_id", ""))

    def close(self) -> None:
        pass
