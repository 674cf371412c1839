"""Keys as the firmware holds them: X25519 pairs for nodes, channel PSKs and channel hashes.

Real X25519 keys (the `cryptography` library), so the public keys the virtual bracelets announce
are genuine curve points, and real AES-CTR, so a packet the station's radio cannot decrypt
reaches the host as the ciphertext a real radio would hand over.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from meshtastic.protobuf import channel_pb2, config_pb2

# Channels.cpp defaultpsk (the key behind the one-byte PSK "AQ=="), published and known to all.
DEFAULT_PSK = base64.b64decode("1PG7OiApB1nwvP+rz05pAQ==")
Preset = config_pb2.Config.LoRaConfig.ModemPreset
# DisplayFormatters.cpp getModemPresetDisplayName: an unnamed channel takes the preset's name.
PRESET_NAMES = {
    Preset.SHORT_TURBO: "ShortTurbo", Preset.SHORT_SLOW: "ShortSlow", Preset.SHORT_FAST: "ShortFast",
    Preset.MEDIUM_SLOW: "MediumSlow", Preset.MEDIUM_FAST: "MediumFast", Preset.LONG_SLOW: "LongSlow",
    Preset.LONG_FAST: "LongFast", Preset.LONG_TURBO: "LongTurbo", Preset.LONG_MODERATE: "LongMod",
}


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


def expand_psk(psk: bytes) -> bytes:
    """Channels.cpp getKey: "" means no encryption, one byte N is the default key with its last
    byte bumped by N-1 (0: none), short keys are zero-padded to 16 or 32 bytes."""
    if len(psk) == 0:
        return b""
    if len(psk) == 1:
        if psk[0] == 0:
            return b""
        key = bytearray(DEFAULT_PSK)
        key[-1] = (key[-1] + psk[0] - 1) & 0xFF
        return bytes(key)
    if len(psk) < 16:
        return psk.ljust(16, b"\0")
    if len(psk) < 32 and len(psk) != 16:
        return psk.ljust(32, b"\0")
    return psk


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
