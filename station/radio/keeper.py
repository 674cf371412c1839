"""Keeps the station's radio able to reach every registered bracelet.

Firmware 2.7.19+ refuses a DM to a node whose key is not in the radio's own NodeDB
(Router.cpp:659-664), and a full NodeDB evicts nodes that are not favourites
(NodeDB.cpp:2096-2110). After every handshake this gives the radio each registered bracelet's
pinned key as a contact (AdminMessage.add_contact: stored, marked a favourite and, with
manually_verified, never replaced by a key announced over the air; NodeDB.cpp addFromContact),
and marks it a favourite when the radio's role does not do that itself (CLIENT_BASE).
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass

from meshtastic.protobuf import admin_pb2, mesh_pb2

from station.logs import event
from station.radio.info import RadioInfo
from station.radio.link import LinkDown, RadioLink
from station.wording import Wording

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bracelet:
    num: int
    label: str
    key_b64: str | None
    long_name: str | None = None
    short_name: str | None = None


def contact(b: Bracelet) -> admin_pb2.AdminMessage:
    key = base64.b64decode(b.key_b64 or "")
    user = mesh_pb2.User(id=f"!{b.num:08x}", long_name=(b.long_name or b.label)[:39],
                         short_name=(b.short_name or (b.label[:4] if b.label else ""))[:4], public_key=key)
    return admin_pb2.AdminMessage(add_contact=admin_pb2.SharedContact(node_num=b.num, user=user,
                                                                      manually_verified=True))


def needed(info: RadioInfo, bracelets: list[Bracelet]) -> list[tuple[Bracelet, bool, bool]]:
    """(bracelet, needs its key, needs to be a favourite) for each one the radio lacks."""
    out = []
    for b in bracelets:
        if not b.key_b64:
            continue
        need_key = info.keys.get(b.num) != b.key_b64
        need_fav = b.num not in info.favorites
        if need_key or need_fav:
            out.append((b, need_key, need_fav))
    return out


class RadioKeeper:
    def __init__(self, link: RadioLink, load_bracelets, record_event):
        self.link = link
        self.load_bracelets = load_bracelets     # () -> list[Bracelet]
        self.record_event = record_event         # (detail) -> None: into the event log
        self._lock = threading.Lock()
        self.pushed = 0

    def sync(self, info: RadioInfo, only: int | None = None) -> int:
        """Give the radio what it lacks; returns how many bracelets were updated."""
        with self._lock:
            bracelets = [b for b in self.load_bracelets() if only is None or b.num == only]
            todo = needed(info, bracelets) if only is None else [(b, True, True) for b in bracelets if b.key_b64]
            done = 0
            for b, need_key, need_fav in todo:
                try:
                    if need_key or need_fav:
                        self.link.send_admin(contact(b))
                    if need_fav and info.role == "CLIENT_BASE":
                        # addFromContact does not favourite on a CLIENT_BASE radio.
                        self.link.send_admin(admin_pb2.AdminMessage(set_favorite_node=b.num))
                except LinkDown as e:
                    log.info("radio key sync waits for the radio: %s", e)
                    break
                info.keys[b.num] = b.key_b64 or ""
                if b.num not in info.favorites:
                    info.favorites.append(b.num)
                done += 1
                self.pushed += 1
                what = "key and favourite" if need_key else "favourite"
                event(log, "radio.contact", logging.INFO, f"gave the radio the {what} of !{b.num:08x}",
                      node=f"!{b.num:08x}")
                node = f"!{b.num:08x}"
                self.record_event(Wording("{node} ({label}): key and favourite", node=node, label=b.label) if need_key
                                  else Wording("{node} ({label}): favourite", node=node, label=b.label))
            return done
