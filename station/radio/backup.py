"""A radio's whole configuration, its channels and its private key, in a file sealed with a
passphrase, so that a replacement radio can take over the station's identity.

The private key is what the bracelets know the station by (their pinned key for it, and the
admin key they accept orders from): a replacement radio restored from this file keeps it, even
though its node number, which comes from its own hardware, is new. The firmware hands the
private key to a client on its own port (AdminModule.cpp, get_config SECURITY_CONFIG) and derives
the public key from a private key it is given (AdminModule.cpp:868-886).

The seal is scrypt (a memory-hard key derivation) and AES-256-GCM from the `cryptography`
library; the file's readable header (format, node, firmware, key fingerprint, scrypt settings)
is authenticated with the data, so neither can be altered unnoticed.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from meshtastic.protobuf import admin_pb2, channel_pb2, config_pb2, mesh_pb2, module_config_pb2

from station.radio.admin import CONFIG_TYPES, MODULE_TYPES, AdminRefused, RadioAdmin
from station.radio.info import fingerprint

FORMAT = "station-radio-backup/1"
SCRYPT = {"n": 2 ** 17, "r": 8, "p": 1}    # 128 MiB, about half a second on a Raspberry Pi 4
MIN_PASSPHRASE = 10


class BackupError(Exception):
    """The file cannot be made or opened; the message says why."""


@dataclass
class RadioBackup:
    node: str
    firmware: str
    hw_model: str
    config: dict[str, bytes] = field(default_factory=dict)          # section -> serialized Config.<X>Config
    module_config: dict[str, bytes] = field(default_factory=dict)
    channels: list[bytes] = field(default_factory=list)             # serialized channel_pb2.Channel
    owner: bytes = b""
    canned: str | None = None

    @property
    def public_key(self) -> bytes:
        sec = config_pb2.Config.SecurityConfig.FromString(self.config.get("security", b""))
        return bytes(sec.public_key)

    def to_json(self) -> bytes:
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        return json.dumps({"node": self.node, "firmware": self.firmware, "hw_model": self.hw_model,
                           "config": {k: b64(v) for k, v in self.config.items()},
                           "module_config": {k: b64(v) for k, v in self.module_config.items()},
                           "channels": [b64(c) for c in self.channels], "owner": b64(self.owner),
                           "canned": self.canned}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "RadioBackup":
        d = json.loads(data)
        un = base64.b64decode
        return cls(d["node"], d["firmware"], d["hw_model"], {k: un(v) for k, v in d["config"].items()},
                   {k: un(v) for k, v in d["module_config"].items()}, [un(c) for c in d["channels"]],
                   un(d["owner"]), d.get("canned"))


def read(admin: RadioAdmin, node: str, firmware: str, hw_model: str, excluded: list[str]) -> RadioBackup:
    """Everything the radio will give its own client, one admin request at a time."""
    b = RadioBackup(node, firmware, hw_model)
    for name in CONFIG_TYPES:
        b.config[name] = admin.config(name).SerializeToString()
    for name, kind in MODULE_TYPES.items():
        if admin_pb2.AdminMessage.ModuleConfigType.Name(kind) in excluded:   # same names as ExcludedModules
            continue
        try:
            b.module_config[name] = admin.module_config(name).SerializeToString()
        except AdminRefused:
            continue     # a module this build answers nothing for
    b.channels = [admin.channel(i).SerializeToString() for i in range(8)]
    b.owner = admin.owner().SerializeToString()
    if "CANNEDMSG_CONFIG" not in excluded:
        try:
            b.canned = admin.canned_messages()
        except AdminRefused:
            b.canned = None
    return b


def write_to(admin: RadioAdmin, b: RadioBackup) -> None:
    """All of it in one transaction (the commit reboots the radio, AdminModule.cpp:335-341)."""
    admin.begin()
    for name in CONFIG_TYPES:
        if name in b.config:
            section = getattr(config_pb2.Config(), name).__class__.FromString(b.config[name])
            admin.set_config(name, section)
    for name, data in b.module_config.items():
        section = getattr(module_config_pb2.ModuleConfig(), name).__class__.FromString(data)
        admin.set_module_config(name, section)
    for data in b.channels:
        admin.set_channel(channel_pb2.Channel.FromString(data))
    owner = mesh_pb2.User.FromString(b.owner)
    if owner.long_name.strip():
        admin.set_owner(mesh_pb2.User(long_name=owner.long_name, short_name=owner.short_name))
    if b.canned is not None:
        admin.set_canned_messages(b.canned)
    admin.commit()


def _kdf(salt: bytes, params: dict) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"])


def seal(b: RadioBackup, passphrase: str) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupError(f"the passphrase must have at least {MIN_PASSPHRASE} characters: this file holds "
                          "the key the bracelets trust the station by")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {"format": FORMAT, "node": b.node, "firmware": b.firmware, "hw_model": b.hw_model,
              "key_fingerprint": fingerprint(b.public_key), "created": int(time.time()),
              "kdf": {"name": "scrypt", **SCRYPT, "salt": base64.b64encode(salt).decode()},
              "cipher": "AES-256-GCM", "nonce": base64.b64encode(nonce).decode()}
    key = _kdf(salt, SCRYPT).derive(passphrase.encode())
    aad = json.dumps(header, sort_keys=True).encode()
    ct = AESGCM(key).encrypt(nonce, b.to_json(), aad)
    return (json.dumps({**header, "ciphertext": base64.b64encode(ct).decode()}, indent=1) + "\n").encode()


def header_of(data: bytes) -> dict:
    try:
        d = json.loads(data)
    except ValueError:
        raise BackupError("this is not a station radio backup (not JSON)") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise BackupError(f"this is not a station radio backup (format {d.get('format') if isinstance(d, dict) else '?'!r})")
    return {k: v for k, v in d.items() if k != "ciphertext"}


def unseal(data: bytes, passphrase: str) -> RadioBackup:
    header = header_of(data)
    d = json.loads(data)
    try:
        kdf = header["kdf"]
        salt, nonce = base64.b64decode(kdf["salt"]), base64.b64decode(header["nonce"])
        params = {"n": int(kdf["n"]), "r": int(kdf["r"]), "p": int(kdf["p"])}
        ct = base64.b64decode(d["ciphertext"])
    except (KeyError, ValueError, TypeError):
        raise BackupError("the backup file is damaged (its header is incomplete)") from None
    if params["n"] > 2 ** 20 or params["r"] > 16 or params["p"] > 4:
        raise BackupError("the backup file asks for an unreasonable key derivation; refused")
    key = _kdf(salt, params).derive(passphrase.encode())
    try:
        plain = AESGCM(key).decrypt(nonce, ct, json.dumps(header, sort_keys=True).encode())
    except InvalidTag:
        raise BackupError("wrong passphrase, or the file was altered") from None
    return RadioBackup.from_json(plain)
