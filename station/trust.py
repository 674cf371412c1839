"""Who a packet speaks for. A node number is a claim anyone on a channel can make; only keys prove.

What real firmware gives the station to tell them apart (github:meshtastic/firmware v2.7.26):
- a direct message sealed with PKI is opened by the station's radio with the key its NodeDB holds
  for the sender, and then handed over with `pki_encrypted` and that `public_key`
  (Router.cpp:445-466); the station gives its radio every bracelet's pinned key, and the radio
  never lets a NodeInfo replace a key it holds (NodeDB.cpp updateUser, "Public Key mismatch"). A
  PKI packet whose key is the pinned one was sealed by the bracelet itself;
- everything else carries only the index of the channel whose key opened it (Router.cpp:515).
  Presses (the detection sensor broadcasts, DetectionSensorModule.cpp:119-138), positions,
  routing ACKs and node infos are never PKI (Router.cpp:655-656): for these the best proof is
  the office's private primary channel, whose key only the office's radios hold.

So: a cancel counts only sealed with the wearer's key; a press, a position, a battery level or
an acknowledgement from a registered number counts when sealed with her key or heard on the
office channel; anything else claiming her number is "unverified", with the reason, and moves
nothing. A node infos' key never replaces a pinned key. Unregistered senders whose names look
like a registered bracelet's (after Unicode folding and confusable letters) are impostors.
"""

from __future__ import annotations

import base64
import functools
import json
import unicodedata
from dataclasses import dataclass
from importlib import resources

import sqlite_utils
from meshtastic.protobuf import mesh_pb2

REGISTERED, UNVERIFIED, UNREGISTERED, IMPOSTOR = "registered", "unverified", "unregistered", "impostor"
LEVELS = (REGISTERED, UNVERIFIED, UNREGISTERED, IMPOSTOR)
KEY, CHANNEL, NONE = "key", "channel", "none"


@dataclass(frozen=True)
class Proof:
    how: str            # key: sealed with the pinned key; channel: on the office channel; none
    reason: str = ""    # why it proves nothing, in words

    @property
    def ok(self) -> bool:
        return self.how != NONE


@dataclass(frozen=True)
class Verdict:
    trust: str
    proof: Proof
    registered: bool

    @property
    def speaks_for_wearer(self) -> bool:
        return self.trust == REGISTERED


def proof_of(packet: mesh_pb2.MeshPacket, pinned_key: str | None, office_channel: bool) -> Proof:
    """What a packet claiming a registered bracelet's number proves (`office_channel`: its channel
    index is the station radio's private primary channel)."""
    if packet.pki_encrypted:
        got = base64.b64encode(packet.public_key).decode() if packet.public_key else ""
        if pinned_key and got == pinned_key:
            return Proof(KEY)
        return Proof(NONE, "sealed with another key than the bracelet's pinned one")
    if office_channel:
        return Proof(CHANNEL)
    return Proof(NONE, f"heard on channel {packet.channel}, not the office's private channel, and not sealed "
                       "with the bracelet's key")


def pinned_key(db: sqlite_utils.Database, num: int) -> tuple[bool, str | None]:
    row = db.execute("SELECT public_key FROM bracelets WHERE node_num=?", (num,)).fetchone()
    return (row is not None, row[0] if row else None)


def verdict(db: sqlite_utils.Database, packet: mesh_pb2.MeshPacket, office_channel: bool,
            names: tuple[str, str] | None = None) -> Verdict:
    num = getattr(packet, "from")
    registered, key = pinned_key(db, num)
    if registered:
        proof = proof_of(packet, key, office_channel)
        return Verdict(REGISTERED if proof.ok else UNVERIFIED, proof, True)
    if names is None:
        row = db.execute("SELECT long_name, short_name FROM nodes WHERE num=?", (num,)).fetchone()
        names = (row[0] or "", row[1] or "") if row else ("", "")
    if looks_like_a_bracelet(db, *names):
        return Verdict(IMPOSTOR, Proof(NONE, "wears a registered bracelet's name"), False)
    return Verdict(UNREGISTERED, Proof(NONE, "not a registered bracelet"), False)


# -- names ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _confusable_classes() -> dict[str, str]:
    """Each character of Unicode's confusables (confusable_homoglyphs' copy of confusables.txt)
    to one representative of its class: letters that look alike fold to the same one."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.setdefault(c, c) != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c
    for char, alikes in data.items():
        for alike in alikes:
            a, b = find(char), find(alike["c"])
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {c: find(c) for c in parent if len(c) == 1}


def skeleton(name: str) -> str:
    """A name as it looks: compatibility forms folded (NFKC), case folded, invisible and space
    characters dropped, letters that look alike (Cyrillic а, Greek ο, fullwidth ａ) made one."""
    text = unicodedata.normalize("NFKC", name or "").casefold()
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Zs", "Zl", "Zp", "Cc", "Mn"))
    classes = _confusable_classes()
    return "".join(classes.get(ch, ch) for ch in text)


def looks_like_a_bracelet(db: sqlite_utils.Database, long_name: str, short_name: str) -> bool:
    wanted = {s for s in (skeleton(long_name), skeleton(short_name)) if s}
    if not wanted:
        return False
    for label, lname, sname in db.execute(
            "SELECT b.label, n.long_name, n.short_name FROM bracelets b LEFT JOIN nodes n ON n.num=b.node_num"):
        if {skeleton(x) for x in (label, lname, sname) if x} & wanted:
            return True
    return False
