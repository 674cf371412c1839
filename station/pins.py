"""Cancel and duress PINs, stored only as salted scrypt hashes.

A 4-digit PIN is weak against anyone holding the database; the hash keeps it out of backups,
exports and logs, and scrypt makes trying all 10,000 take minutes rather than microseconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

_N, _R, _P = 2**14, 8, 1
PIN_RE = re.compile(r"^\d{4,8}$")


def valid_pin(pin: str) -> bool:
    return bool(PIN_RE.match(pin))


def hash_pin(pin: str) -> str:
    if not valid_pin(pin):
        raise ValueError("a PIN is 4 to 8 digits")
    salt = os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_pin(pin: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(pin.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))
