"""One module per medium behind one interface: `send(Outgoing) -> external id`, raising
`ChannelError` with whether a retry can help. The mesh is the exception: its messages join the
receipts queue (mesh.py), which already paces texts as the firmware requires and follows each to
the responder node's acknowledgement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Outgoing:
    id: int
    incident_id: int
    responder: str
    address: str
    text: str
    attempt: int


class ChannelError(Exception):
    """Why a message did not leave; `retry`: trying again later can help; `wait_s`: not before."""

    def __init__(self, reason: str, *, retry: bool = True, wait_s: float | None = None):
        super().__init__(reason)
        self.reason, self.retry, self.wait_s = reason, retry, wait_s


class Channel(Protocol):
    name: str

    def send(self, message: Outgoing) -> str | None: ...

    def close(self) -> None: ...


def build(cfg, *, on_reply=None, on_delivered=None) -> dict[str, Channel]:
    """The channels this config sets up, by name. `on_reply(channel, address, text)` and
    `on_delivered(channel, external id)` are for the media that answer (SMS)."""
    from station.escalation.channels import email, push
    out: dict[str, Channel] = {}
    if cfg.email["host"]:
        out["email"] = email.Email.from_config(cfg)
    if cfg.push["ntfy_url"]:
        out["ntfy"] = push.Ntfy.from_config(cfg)
    if cfg.push["telegram_token_file"]:
        out["telegram"] = push.Telegram.from_config(cfg)
    if cfg.sms["port"]:
        from station.escalation.channels import sms
        out["sms"] = sms.Sms.from_config(cfg, on_reply=on_reply, on_delivered=on_delivered)
    return out


def read_secret(path: str, base_dir, what: str) -> str:
    from pathlib import Path
    p = Path(path)
    p = p if p.is_absolute() else Path(base_dir) / p
    try:
        return p.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ChannelError(f"{what} cannot be read from {p}: {e.strerror}", retry=False) from None
