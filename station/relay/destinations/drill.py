"""The drill destination: posts go to a local JSON-lines file, never to a public account."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from station.relay.destinations.base import Permanent, Posted


class DrillDestination:
    idempotency_window_s = float("inf")   # the file is ours: a repeated key is found, never written twice

    def __init__(self, settings):
        self.name = settings.name
        self.path = Path(settings.path)

    def probe_url(self) -> None:
        return None   # needs no internet

    def post(self, text: str, *, key: str, reply_to: str | None) -> Posted:
        for rec in self.read():
            if rec.get("key") == key:
                return Posted(rec["id"], None)
        rec = {"id": key, "key": key, "at": time.time(), "text": text, "reply_to": reply_to, "event": "post"}
        self._append(rec)
        return Posted(key, None)

    def delete(self, remote_id: str) -> None:
        self._append({"event": "delete", "id": remote_id, "at": time.time()})

    def read(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def _append(self, rec: dict) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise Permanent(f"cannot write the drill file {self.path}: {e.strerror}") from None
