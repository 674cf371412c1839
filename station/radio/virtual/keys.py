"""Keys as the firmware holds them: X25519 pairs for nodes, channel PSKs and channel hashes.

Real X25519 keys (the `cryptography` library), so the public keys the virtual bracelets announce
are genuine curve points, and real AES-CTR, so a packet the station's radio cannot decrypt
reaches the host as the ciphertext a real radio would hand over.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from meshtastic.protobuf import channel_pb2

from station.radio.channels import PRESET_NAMES, expand_psk


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


def channel_name(settings: channel_pb2.ChannelSettings, preset: int) -> str:
    return settings.name or PRESET_NAMES.get(preset, "Invalid")


def channel_hash(settings: channel_pb2.ChannelSettings, preset: int) -> int:
    """Channels.cpp generateHash: xor of the name's bytes, then of the expanded key's bytes."""
    h = 0
    for b in channel_name(settings, preset).encode():
        h ^= b
    for b in expand_psk(settings.psk):
        h ^= b
    return h


def is_default_channel(settings: channel_pb2.ChannelSettings, preset: int) -> bool:
    """Channels.cpp:376-388: the one-byte PSK 1 under the preset's own name is the public channel
    anyone can read; the detection sensor refuses to send on it."""
    return settings.psk == b"\x01" and channel_name(settings, preset) == PRESET_NAMES.get(preset)


def same_channel(a: channel_pb2.ChannelSettings, b: channel_pb2.ChannelSettings, preset: int) -> bool:
    """Two nodes share a channel when name and key agree (the hash alone collides one time in 256)."""
    return channel_name(a, preset) == channel_name(b, preset) and expand_psk(a.psk) == expand_psk(b.psk)


def aes_ctr(key: bytes, packet_id: int, sender: int, data: bytes) -> bytes:
    """CryptoEngine: AES-CTR with the nonce packet id (8 bytes LE), sender (4 bytes LE), 4 zeros."""
    if not key:
        return data
    nonce = struct.pack("<QI", packet_id, sender) + b"\0" * 4
    enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    return enc.update(data) + enc.finalize()
