"""The radio's own node database, as NodeDB.cpp keeps it: a fixed number of entries, favourites
that are never evicted, and the oldest "boring" node (no key) evicted first when full."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from meshtastic.protobuf import mesh_pb2


@dataclass
class Entry:
    num: int
    user: mesh_pb2.User | None = None
    last_heard: int = 0
    snr: float = 0.0
    hops_away: int | None = None
    channel: int = 0
    is_favorite: bool = False
    is_ignored: bool = False
    key_verified: bool = False
    position: mesh_pb2.Position | None = None
    metrics: object | None = None        # telemetry_pb2.DeviceMetrics

    @property
    def public_key(self) -> bytes:
        return bytes(self.user.public_key) if self.user is not None else b""

    def as_nodeinfo(self, *, thin: bool = False) -> mesh_pb2.NodeInfo:
        info = mesh_pb2.NodeInfo(num=self.num, last_heard=self.last_heard, snr=self.snr, channel=self.channel,
                                 is_favorite=self.is_favorite, is_ignored=self.is_ignored,
                                 is_key_manually_verified=self.key_verified)
        if self.user is not None:
            info.user.CopyFrom(self.user)
        if self.hops_away is not None:
            info.hops_away = self.hops_away
        # 2.8 sends other nodes thin (PhoneAPI.cpp prefetchNodeInfos, ConvertToNodeInfoThin): their
        # positions and metrics follow as replayed packets instead.
        if not thin:
            if self.position is not None:
                info.position.CopyFrom(self.position)
            if self.metrics is not None:
                info.device_metrics.CopyFrom(self.metrics)
        return info


@dataclass
class NodeDB:
    own: int
    capacity: int = 80
    entries: dict[int, Entry] = field(default_factory=dict)
    evicted: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self.entries.setdefault(self.own, Entry(self.own, is_favorite=True))

    def get(self, num: int) -> Entry | None:
        return self.entries.get(num)

    def get_or_create(self, num: int) -> Entry:
        with self._lock:
            entry = self.entries.get(num)
            if entry is None:
                if len(self.entries) >= self.capacity:
                    self._evict()
                entry = self.entries[num] = Entry(num)
            return entry

    def _evict(self) -> None:
        """NodeDB.cpp:2096-2110: the oldest non-favourite, non-ignored, unverified node; a "boring"
        one (no public key) first. Our own entry is never a candidate."""
        candidates = [e for e in self.entries.values()
                      if e.num != self.own and not e.is_favorite and not e.is_ignored]
        boring = [e for e in candidates if not e.public_key]
        pool = boring or [e for e in candidates if not e.key_verified]
        if not pool:
            return
        victim = min(pool, key=lambda e: e.last_heard)
        del self.entries[victim.num]
        self.evicted.append(victim.num)

    def key_of(self, num: int) -> bytes:
        entry = self.entries.get(num)
        return entry.public_key if entry else b""

    def others(self) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries.values() if e.num != self.own]

    def remove(self, num: int) -> None:
        with self._lock:
            if num != self.own:
                self.entries.pop(num, None)

    def reset(self, keep_favorites: bool) -> None:
        with self._lock:
            self.entries = {n: e for n, e in self.entries.items() if n == self.own or (keep_favorites and e.is_favorite)}

    def add_contact(self, contact: mesh_pb2.SharedContact) -> None:
        """NodeDB.cpp addFromContact: the user (and its key) is stored and the node made a
        favourite so that it is not evicted, unless the entry's key was manually verified and the
        contact brings another key."""
        with self._lock:
            entry = self.get_or_create(contact.node_num)
            if not contact.HasField("user"):
                return
            if entry.key_verified and not contact.manually_verified and \
                    bytes(contact.user.public_key) != entry.public_key:
                return
            entry.user = mesh_pb2.User()
            entry.user.CopyFrom(contact.user)
            if contact.should_ignore:
                entry.is_ignored, entry.is_favorite = True, False
                entry.user.public_key = b""
            else:
                entry.is_favorite = True
            if contact.manually_verified:
                entry.key_verified = True
