"""Console accounts: roles, scrypt password hashes, login throttling, and the audit log.

There is no default account and no default password: `station users add NAME --role admin`
creates the first one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

import sqlite_utils

from station.errors import Refusal

ROLES = ("admin", "coordinator", "technician", "viewer")
# What each role may do; admin may do everything.
PERMISSIONS = {
    "viewer": {"read"},
    "technician": {"read", "station"},
    "coordinator": {"read", "incidents", "wearers", "publish"},
    "admin": {"read", "station", "incidents", "wearers", "publish", "users", "config"},
}
MIN_PASSWORD = 10
MAX_FAILED = 5          # failed logins in a row before the account waits
LOCK_S = 300.0
_N, _R, _P = 2**15, 8, 1   # scrypt: 32 MiB of memory a hash


class UserError(Refusal):
    pass


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.role]


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=64 * 2**20, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 2**20, dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def audit(db: sqlite_utils.Database, at: float, actor: str, action: str, detail: str = "") -> None:
    db.execute("INSERT INTO audit (at, actor, action, detail) VALUES (?,?,?,?)", (at, actor, action, detail))


def add(db: sqlite_utils.Database, name: str, role: str, password: str, at: float, actor: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-" for c in name):
        raise UserError("a user name is 1 to 64 letters, digits, dots, dashes or underscores")
    if role not in ROLES:
        raise UserError("role must be one of {choices}", choices=", ".join(ROLES))
    if len(password) < MIN_PASSWORD:
        raise UserError("a password has at least {n} characters", n=MIN_PASSWORD)
    if db.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone():
        raise UserError("user {name} exists already", name=name)
    db.execute("INSERT INTO users (name, role, password_hash, created_at) VALUES (?,?,?,?)",
               (name, role, hash_password(password), at))
    audit(db, at, actor, "user added", f"{name} ({role})")


@dataclass(frozen=True)
class LoginAttempt:
    """What a login needs from the database, read outside any transaction."""
    name: str
    row: tuple | None          # role, password_hash, failed_logins, locked_until, disabled


def look_up(db: sqlite_utils.Database, name: str) -> LoginAttempt:
    return LoginAttempt(name, db.execute("SELECT role, password_hash, failed_logins, locked_until, disabled "
                                         "FROM users WHERE name=?", (name,)).fetchone())


def password_matches(attempt: LoginAttempt, password: str, decoy: str) -> bool:
    """One scrypt whatever the account (unknown, disabled, locked or real), so that the time a
    login takes says nothing about which names exist. Never inside a transaction: 32 MiB and
    tens of milliseconds of CPU must not hold the lock the daemon stores alerts under."""
    stored = attempt.row[1] if attempt.row is not None else decoy
    return check_password(password, stored) and attempt.row is not None


def record_login(db: sqlite_utils.Database, attempt: LoginAttempt, matched: bool, at: float) -> User | None:
    """The outcome, in a short transaction: the user, or None; failures count, and an account
    with too many waits LOCK_S."""
    name = attempt.name
    row = db.execute("SELECT role, failed_logins, locked_until, disabled FROM users WHERE name=?",
                     (name,)).fetchone()
    if row is None:
        audit(db, at, name[:64], "login failed", "unknown user")
        return None
    role, failed, locked_until, disabled = row
    if disabled or (locked_until and locked_until > at):
        audit(db, at, name, "login refused", "disabled" if disabled else "too many failed attempts")
        return None
    if not matched:
        failed += 1
        db.execute("UPDATE users SET failed_logins=?, locked_until=? WHERE name=?",
                   (failed, at + LOCK_S if failed >= MAX_FAILED else None, name))
        audit(db, at, name, "login failed", f"{failed} in a row")
        return None
    db.execute("UPDATE users SET failed_logins=0, locked_until=NULL, last_login=? WHERE name=?", (at, name))
    audit(db, at, name, "logged in")
    return User(name, role)


def authenticate(db: sqlite_utils.Database, name: str, password: str, at: float, decoy: str | None = None,
                 write=None) -> User | None:
    """look_up, password_matches and record_login in that order; `write(db, fn)` runs the last in
    its own transaction (the console's), else it runs on `db` as it is."""
    attempt = look_up(db, name)
    matched = password_matches(attempt, password, decoy or hash_password("decoy"))
    return (write or (lambda d, fn: fn(d)))(db, lambda d: record_login(d, attempt, matched, at))


def get(db: sqlite_utils.Database, name: str) -> User | None:
    row = db.execute("SELECT role FROM users WHERE name=? AND disabled=0", (name,)).fetchone()
    return User(name, row[0]) if row else None
