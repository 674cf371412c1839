"""Channel keys as the firmware reads them (src/mesh/Channels.cpp), shared by the station and
the virtual radio: the published default key, the preset names an unnamed channel takes, how a
stored PSK expands to the AES key, and a fingerprint to compare keys without showing them."""

from __future__ import annotations

import base64
import hashlib
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
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
# A channel name is a char[12] in channel.options: 11 characters and the terminator.
NAME_MAX = 11


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


def own_key(psk: bytes) -> bool:
    """A key of its own: not none, not the published default nor one of its one-byte variants
    (Channels.cpp getKey), whether written as the shorthand or spelled out."""
    key = expand_psk(psk)
    return len(psk) > 1 and bool(key) and key != DEFAULT_PSK


def key_id(psk: bytes) -> str:
    """What two keys are compared by on screen and in the database: 4 bytes of SHA-256 of the
    expanded key. It says whether two radios share a key, and nothing that helps guess it."""
    key = expand_psk(psk)
    if not key:
        return "none"
    return hashlib.sha256(key).hexdigest()[:8]


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


def aes_ctr(key: bytes, packet_id: int, sender: int, data: bytes) -> bytes:
    """CryptoEngine: AES-CTR with the nonce packet id (8 bytes LE), sender (4 bytes LE), 4 zeros."""
    if not key:
        return data
    nonce = struct.pack("<QI", packet_id, sender) + b"\0" * 4
    enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    return enc.update(data) + enc.finalize()
