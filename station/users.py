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


def add_first_admin(db: sqlite_utils.Database, name: str, password: str, at: float, actor: str) -> None:
    """The first-run page's account. Checked inside the transaction: two browsers racing must
    not make two first administrators, nor a late one an administrator of a station in use."""
    if db.execute("SELECT 1 FROM users LIMIT 1").fetchone():
        raise UserError("an account exists already: log in")
    add(db, name, "admin", password, at, actor)


@dataclass(frozen=True)
class LoginAttempt:
    """What a login needs from the database, read outside any transaction."""
    name: str
    row: tuple | None          # role, password_hash, disabled


def look_up(db: sqlite_utils.Database, name: str) -> LoginAttempt:
    return LoginAttempt(name, db.execute("SELECT role, password_hash, disabled FROM users WHERE name=?",
                                         (name,)).fetchone())


def password_matches(attempt: LoginAttempt, password: str, decoy: str) -> bool:
    """One scrypt whatever the account (unknown, disabled, locked or real), so that the time a
    login takes says nothing about which names exist. Never inside a transaction: 32 MiB and
    tens of milliseconds of CPU must not hold the lock the daemon stores alerts under."""
    stored = attempt.row[1] if attempt.row is not None else decoy
    return check_password(password, stored) and attempt.row is not None


def record_login(db: sqlite_utils.Database, attempt: LoginAttempt, matched: bool, at: float,
                 client: str = "?") -> User | None:
    """The outcome, in a short transaction: the user, or None. Failures count per account AND
    client: MAX_FAILED in a row from one client lock that client out of that account for LOCK_S,
    and nobody else (a colleague typing wrong passwords on purpose cannot lock a coordinator
    out during an emergency). An administrator can lift a lock (`unlock`)."""
    name = attempt.name
    row = db.execute("SELECT role, disabled FROM users WHERE name=?", (name,)).fetchone()
    if row is None:
        audit(db, at, name[:64], "login failed", f"unknown user, from {client}")
        return None
    role, disabled = row
    failed, locked_until = db.execute("SELECT failed, locked_until FROM login_failures WHERE user=? AND client=?",
                                      (name, client)).fetchone() or (0, None)
    if disabled or (locked_until and locked_until > at):
        audit(db, at, name, "login refused", ("disabled" if disabled else "too many failed attempts") + f", from {client}")
        return None
    if not matched:
        failed += 1
        db.execute("INSERT INTO login_failures (user, client, failed, failed_at, locked_until) VALUES (?,?,?,?,?) "
                   "ON CONFLICT(user, client) DO UPDATE SET failed=excluded.failed, failed_at=excluded.failed_at, "
                   "locked_until=excluded.locked_until",
                   (name, client, failed, at, at + LOCK_S if failed >= MAX_FAILED else None))
        audit(db, at, name, "login failed", f"{failed} in a row from {client}")
        return None
    db.execute("DELETE FROM login_failures WHERE user=? AND client=?", (name, client))
    db.execute("UPDATE users SET last_login=? WHERE name=?", (at, name))
    audit(db, at, name, "logged in", f"from {client}")
    return User(name, role)


def authenticate(db: sqlite_utils.Database, name: str, password: str, at: float, decoy: str | None = None,
                 write=None, client: str = "?") -> User | None:
    """look_up, password_matches and record_login in that order; `write(db, fn)` runs the last in
    its own transaction (the console's), else it runs on `db` as it is."""
    attempt = look_up(db, name)
    matched = password_matches(attempt, password, decoy or hash_password("decoy"))
    return (write or (lambda d, fn: fn(d)))(db, lambda d: record_login(d, attempt, matched, at, client))


def get(db: sqlite_utils.Database, name: str) -> User | None:
    row = db.execute("SELECT role FROM users WHERE name=? AND disabled=0", (name,)).fetchone()
    return User(name, row[0]) if row else None


# -- sessions ------------------------------------------------------------------------------------

def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: sqlite_utils.Database, name: str, at: float, client: str = "?") -> str:
    """A new console session: the token for the cookie (only its hash is stored)."""
    token = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    db.execute("INSERT INTO console_sessions (token_hash, user, client, created_at) VALUES (?,?,?,?)",
               (_token_hash(token), name, client, at))
    return token


def session_user(db: sqlite_utils.Database, token: str | None) -> User | None:
    """The account behind a session token, if the session and the account are both still live."""
    if not token:
        return None
    row = db.execute("SELECT u.name, u.role FROM console_sessions s JOIN users u ON u.name = s.user "
                     "WHERE s.token_hash=? AND s.revoked_at IS NULL AND u.disabled=0", (_token_hash(token),)).fetchone()
    return User(*row) if row else None


def end_session(db: sqlite_utils.Database, token: str, at: float) -> None:
    db.execute("UPDATE console_sessions SET revoked_at=? WHERE token_hash=? AND revoked_at IS NULL",
               (at, _token_hash(token)))


def revoke_sessions(db: sqlite_utils.Database, name: str, at: float, actor: str, why: str = "revoked") -> int:
    n = db.execute("UPDATE console_sessions SET revoked_at=? WHERE user=? AND revoked_at IS NULL", (at, name)).rowcount
    if n:
        audit(db, at, actor, "sessions revoked", f"{name}: {n} ({why})")
    return n


# -- what an administrator does to accounts ------------------------------------------------------

def revoke(db: sqlite_utils.Database, name: str, at: float, actor: str) -> int:
    """End every session of an existing account (a lost phone, a stolen laptop)."""
    _existing(db, name)
    return revoke_sessions(db, name, at, actor)


def _existing(db: sqlite_utils.Database, name: str) -> tuple:
    row = db.execute("SELECT role, disabled FROM users WHERE name=?", (name,)).fetchone()
    if row is None:
        raise UserError("there is no user {name}", name=name)
    return row


def _keep_an_admin(db: sqlite_utils.Database, name: str) -> None:
    others = db.execute("SELECT COUNT(*) FROM users WHERE role='admin' AND disabled=0 AND name != ?",
                        (name,)).fetchone()[0]
    if not others:
        raise UserError("{name} is the last administrator: make another one first", name=name)


def set_password(db: sqlite_utils.Database, name: str, password: str, at: float, actor: str) -> None:
    """A new password; every session of the account ends (a stolen cookie dies with the old password)."""
    _existing(db, name)
    if len(password) < MIN_PASSWORD:
        raise UserError("a password has at least {n} characters", n=MIN_PASSWORD)
    db.execute("UPDATE users SET password_hash=? WHERE name=?", (hash_password(password), name))
    db.execute("DELETE FROM login_failures WHERE user=?", (name,))
    audit(db, at, actor, "password changed", name)
    revoke_sessions(db, name, at, actor, "password changed")


def set_role(db: sqlite_utils.Database, name: str, role: str, at: float, actor: str) -> None:
    old, _ = _existing(db, name)
    if role not in ROLES:
        raise UserError("role must be one of {choices}", choices=", ".join(ROLES))
    if old == "admin" and role != "admin":
        _keep_an_admin(db, name)
    db.execute("UPDATE users SET role=? WHERE name=?", (role, name))
    audit(db, at, actor, "role changed", f"{name}: {old} -> {role}")


def set_disabled(db: sqlite_utils.Database, name: str, disabled: bool, at: float, actor: str) -> None:
    role, _ = _existing(db, name)
    if disabled and role == "admin":
        _keep_an_admin(db, name)
    db.execute("UPDATE users SET disabled=? WHERE name=?", (int(disabled), name))
    audit(db, at, actor, "user disabled" if disabled else "user enabled", name)
    if disabled:
        revoke_sessions(db, name, at, actor, "disabled")


def unlock(db: sqlite_utils.Database, name: str, at: float, actor: str) -> int:
    """Lift every login lock on the account; how many clients were locked out."""
    _existing(db, name)
    n = db.execute("DELETE FROM login_failures WHERE user=?", (name,)).rowcount
    audit(db, at, actor, "user unlocked", f"{name} ({n} client(s))")
    return n


def accounts(db: sqlite_utils.Database, at: float) -> list[dict]:
    """Every account, with what an administrator needs: locks now in force and live sessions."""
    rows = db.execute("""
        SELECT u.name, u.role, u.created_at, u.last_login, u.disabled,
               (SELECT COUNT(*) FROM login_failures f WHERE f.user=u.name AND f.locked_until > ?),
               (SELECT COUNT(*) FROM console_sessions s WHERE s.user=u.name AND s.revoked_at IS NULL)
        FROM users u ORDER BY u.name""", (at,)).fetchall()
    keys = ("name", "role", "created_at", "last_login", "disabled", "locked_clients", "sessions")
    return [dict(zip(keys, r)) for r in rows]
