"""Cancel and duress PINs, stored only as keyed scrypt hashes.

A PIN has few digits: whoever holds its hash can try every PIN (10,000 four-digit PINs take about
seven minutes of one laptop core at this cost). So each hash is also keyed with the station's PIN
key, a file beside the database and never inside it or its backups: a stolen backup alone no longer
tells which PIN cancels and which one is the duress PIN. Someone who seizes the whole station has
the key too; then only the PIN's length stands between them and the answer (README: PINs).

Stored form: scrypt-k1$<key id>$N$r$p$<salt>$<HMAC-SHA256(key, scrypt(PIN, salt))>. The key id names
the key a hash was made with, so a station restored without its old key can say which PINs must be
set again. Hashes from before the key (scrypt$...) are keyed in place: the HMAC is taken over
their scrypt digest, so no PIN is needed to upgrade them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from station.errors import Refusal

_N, _R, _P = 2**14, 8, 1
MAX_DIGITS = 8
DEFAULT_MIN_DIGITS = 6
KEY_FILE = "pin.key"
_KEYED, _LEGACY = "scrypt-k1", "scrypt"


class PinError(Refusal):
    pass


def check_pin(pin: str, min_digits: int = DEFAULT_MIN_DIGITS) -> str:
    """The PIN itself, or PinError saying what a PIN must be."""
    if not re.fullmatch(rf"\d{{{min_digits},{MAX_DIGITS}}}", pin or ""):
        raise PinError("a PIN is {low} to {high} digits", low=min_digits, high=MAX_DIGITS)
    return pin


def key_path(database: Path, configured: str = "") -> Path:
    return Path(configured) if configured else database.with_name(KEY_FILE)


@dataclass(frozen=True)
class PinKey:
    secret: bytes

    @property
    def id(self) -> str:
        return hashlib.sha256(b"station pin key id\0" + self.secret).hexdigest()[:12]

    @classmethod
    def load(cls, path: Path, *, create: bool = True) -> "PinKey":
        """The key in `path`; a new one is drawn (0600) when there is none and `create`."""
        try:
            raw = base64.b64decode(path.read_text().strip(), validate=True)
        except FileNotFoundError:
            if not create:
                raise
            raw = os.urandom(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.b64encode(raw).decode() + "\n")
                f.flush()
                os.fsync(f.fileno())
            return cls(raw)
        except (ValueError, UnicodeDecodeError):
            raise PinError("the PIN key {path} is damaged (not base64)", path=str(path)) from None
        if len(raw) != 32:
            raise PinError("the PIN key {path} is damaged (not 32 bytes)", path=str(path))
        return cls(raw)

    def hash(self, pin: str, min_digits: int = DEFAULT_MIN_DIGITS) -> str:
        check_pin(pin, min_digits)
        salt = os.urandom(16)
        return self._stored(salt, _scrypt(pin, salt, _N, _R, _P, 32), _N, _R, _P)

    def verify(self, pin: str, stored: str | None) -> bool:
        if not stored:
            return False
        try:
            scheme, *fields = stored.split("$")
            if scheme == _KEYED:
                key_id, n, r, p, salt, digest = fields
                if key_id != self.id:
                    return False
            elif scheme == _LEGACY:
                n, r, p, salt, digest = fields
            else:
                return False
            want = base64.b64decode(digest)
            got = _scrypt(pin, base64.b64decode(salt), int(n), int(r), int(p), 32)
        except (ValueError, TypeError):
            return False
        if scheme == _KEYED:
            got = self._mac(got)
        return hmac.compare_digest(got, want)

    def upgrade(self, stored: str | None) -> str | None:
        """A hash from before the key, keyed now; None when there is nothing to do."""
        if not stored or not stored.startswith(_LEGACY + "$"):
            return None
        _, n, r, p, salt, digest = stored.split("$")
        return self._stored(base64.b64decode(salt), base64.b64decode(digest), int(n), int(r), int(p))

    def _mac(self, digest: bytes) -> bytes:
        return hmac.new(self.secret, digest, hashlib.sha256).digest()

    def _stored(self, salt: bytes, digest: bytes, n: int, r: int, p: int) -> str:
        return (f"{_KEYED}${self.id}${n}${r}${p}${base64.b64encode(salt).decode()}$"
                f"{base64.b64encode(self._mac(digest)).decode()}")


def key_id_of(stored: str | None) -> str | None:
    """The id of the key a hash was made with; "" for a hash from before the keys; None for none."""
    if not stored:
        return None
    scheme, _, rest = stored.partition("$")
    return rest.split("$")[0] if scheme == _KEYED else ""


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen)


@dataclass(frozen=True)
class PinPolicy:
    """The station's PIN key and the fewest digits a new PIN may have ([alerts] in the config)."""

    key: PinKey
    min_digits: int = DEFAULT_MIN_DIGITS

    def hash(self, pin: str) -> str:
        return self.key.hash(pin, self.min_digits)

    def check(self, pin: str) -> str:
        return check_pin(pin, self.min_digits)

    def hash_pair(self, cancel: str | None, duress: str | None) -> tuple[str | None, str | None]:
        """Both PINs checked and hashed (outside any database transaction: scrypt is slow)."""
        if cancel and duress and cancel == duress:
            raise PinError("the cancel PIN and the duress PIN must differ")
        return (self.hash(cancel) if cancel else None, self.hash(duress) if duress else None)

    @classmethod
    def of(cls, cfg, *, create: bool = True) -> "PinPolicy":
        return cls(PinKey.load(configured_key_path(cfg), create=create), cfg.alerts["min_pin_digits"])


def configured_key_path(cfg) -> Path:
    configured = cfg.alerts["pin_key_file"]
    if configured and not Path(configured).is_absolute():
        configured = str(cfg.base_dir / configured)
    return key_path(cfg.database_path, configured)
