"""Keys as the firmware holds them: X25519 pairs for nodes, channel PSKs and channel hashes.

Real X25519 keys (the `cryptography` library), so the public keys the virtual bracelets announce
are genuine curve points, and real AES-CTR, so a packet the station's radio cannot decrypt
reaches the host as the ciphertext a real radio would hand over.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from meshtastic.protobuf import channel_pb2

# Shared with the station's own side (the MQTT uplink opens what a gateway's radio uplinks).
from station.radio.channels import PRESET_NAMES, aes_ctr, channel_hash, channel_name, expand_psk  # noqa: F401


@dataclass(frozen=True)
class KeyPair:
    private: bytes
    public: bytes

    @classmethod
    def from_seed(cls, seed: str) -> "KeyPair":
        """Reproducible keys for a reproducible cast; a real node draws its key at random."""
        priv = X25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
        pub = priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(hashlib.sha256(seed.encode()).digest(), pub)


def is_default_channel(settings: channel_pb2.ChannelSettings, preset: int) -> bool:
    """Channels.cpp:376-388: the one-byte PSK 1 under the preset's own name is the public channel
    anyone can read; the detection sensor refuses to send on it."""
    return settings.psk == b"\x01" and channel_name(settings, preset) == PRESET_NAMES.get(preset)


def same_channel(a: channel_pb2.ChannelSettings, b: channel_pb2.ChannelSettings, preset: int) -> bool:
    """Two nodes share a channel when name and key agree (the hash alone collides one time in 256)."""
    return channel_name(a, preset) == channel_name(b, preset) and expand_psk(a.psk) == expand_psk(b.psk)
