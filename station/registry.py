"""The bracelet registry: which nodes are trusted bracelets, their pinned keys and PINs.

A bracelet is registered with its public key, read from the device over USB when it is
provisioned (or given by whoever read it there): never pinned from whoever speaks first under
its number, which anyone on a channel can claim. What a packet claiming it proves is
station/trust.py's business.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import sqlite_utils

from station import pins
from station.errors import Refusal
from station.trust import IMPOSTOR, REGISTERED, UNREGISTERED, UNVERIFIED
from station.wording import Wording

TRUST = (REGISTERED, UNVERIFIED, UNREGISTERED, IMPOSTOR)


class RegistryError(Refusal):
    pass


def _parse(value, kind):
    """`value` as an int or float, or None when it is not one (a form sends text)."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Bracelet:
    node_num: int
    label: str
    public_key: str | None
    pinned_at: float | None
    has_cancel_pin: bool
    has_duress_pin: bool
    added_at: float
    hw_model: str | None = None
    firmware: str | None = None
    firmware_seen_at: float | None = None


def normalise_key(key: str) -> str:
    """Accept base64 (as the Meshtastic apps show it) or hex; return base64 of 32 bytes."""
    k = key.strip()
    raw: bytes | None = None
    try:
        raw = bytes.fromhex(k) if len(k) == 64 else base64.b64decode(k, validate=True)
    except (ValueError, binascii.Error):
        raw = None
    if raw is None or len(raw) != 32:
        raise RegistryError("a public key is 32 bytes, written in base64 (44 characters) or hex (64)")
    return base64.b64encode(raw).decode()


def add(db: sqlite_utils.Database, num: int, label: str, at: float, *, public_key: str | None = None,
        pin_hashes: tuple[str | None, str | None] = (None, None)) -> None:
    """`pin_hashes` from PinPolicy.hash_pair, made before the transaction: scrypt must not hold
    the write lock the daemon stores alerts under."""
    label = label.strip()
    if not label or len(label) > 64:
        raise RegistryError("a label is 1 to 64 characters")
    if not public_key:
        raise RegistryError("a bracelet is registered with its public key: read it from the device with "
                            "station bracelets provision, or give --public-key (it is never taken from whoever "
                            "first speaks under the bracelet's number)")
    key = normalise_key(public_key)
    if db.execute("SELECT 1 FROM bracelets WHERE node_num=?", (num,)).fetchone():
        raise RegistryError("node {node} is already registered; remove it first to re-provision", node=f"!{num:08x}")
    db.execute(
        "INSERT INTO bracelets (node_num, label, public_key, pinned_at, cancel_pin_hash, duress_pin_hash, added_at)"
        " VALUES (?,?,?,?,?,?,?)",
        (num, label, key, at, pin_hashes[0], pin_hashes[1], at))


def set_pins(db: sqlite_utils.Database, num: int, pin_hashes: tuple[str | None, str | None], actor: str,
             at: float) -> None:
    if db.execute("UPDATE bracelets SET cancel_pin_hash=?, duress_pin_hash=? WHERE node_num=?",
                  (*pin_hashes, num)).rowcount != 1:
        raise RegistryError("{node} is not registered (station bracelets add first)", node=f"!{num:08x}")
    from station.incidents import log_event       # incidents imports this module
    log_event(db, None, at, actor, "PINs set",
              Wording("{node}: cancel PIN {cancel}, duress PIN {duress}", node=f"!{num:08x}",
                      cancel="set" if pin_hashes[0] else "none", duress="set" if pin_hashes[1] else "none"))


def remove(db: sqlite_utils.Database, num: int) -> bool:
    return db.execute("DELETE FROM bracelets WHERE node_num=?", (num,)).rowcount == 1


def set_label(db: sqlite_utils.Database, num: int, label: str, actor: str, at: float) -> None:
    label = label.strip()
    if not label or len(label) > 64:
        raise RegistryError("a label is 1 to 64 characters")
    old = db.execute("SELECT label FROM bracelets WHERE node_num=?", (num,)).fetchone()
    if old is None:
        raise RegistryError("{node} is not registered (station bracelets add first)", node=f"!{num:08x}")
    db.execute("UPDATE bracelets SET label=? WHERE node_num=?", (label, num))
    from station.incidents import log_event
    log_event(db, None, at, actor, "bracelet renamed",
              Wording("{node}: {old} -> {new}", node=f"!{num:08x}", old=old[0], new=label))


def retire(db: sqlite_utils.Database, num: int, actor: str, at: float) -> None:
    """The bracelet leaves the registry (returned, lost, given to someone else): from now on what
    comes from its number proves nothing. Its past alerts stay, still under the label she was
    registered with (retired_bracelets), never under the name the node announces, which is
    whatever its next holder types."""
    old = db.execute("SELECT label, public_key, added_at FROM bracelets WHERE node_num=?", (num,)).fetchone()
    if old is None:
        raise RegistryError("{node} is not registered (station bracelets add first)", node=f"!{num:08x}")
    db.execute("INSERT INTO retired_bracelets (node_num, label, public_key, added_at, retired_at, retired_by) "
               "VALUES (?,?,?,?,?,?)", (num, old[0], old[1], old[2], at, actor))
    remove(db, num)
    from station.incidents import log_event
    log_event(db, None, at, actor, "bracelet retired", Wording("{node} ({label})", node=f"!{num:08x}", label=old[0]))


def label_at(num: str, at: str) -> str:
    """SQL for the label a record of node `num` made at time `at` is shown under: that of the
    registration in force then when the bracelet has been retired since, else the current label
    (joined as `b`), else what the node announces (`n`, unregistered)."""
    return f"""COALESCE(
    (SELECT r.label FROM retired_bracelets r WHERE r.node_num = {num} AND r.added_at <= {at}
       AND r.retired_at >= {at} ORDER BY r.id DESC LIMIT 1),
    b.label, n.long_name)"""


INCIDENT_LABEL = label_at("i.node_num", "i.opened_at")


def retired(db: sqlite_utils.Database) -> list[dict]:
    rows = db.execute("SELECT node_num, label, added_at, retired_at, retired_by FROM retired_bracelets "
                      "ORDER BY retired_at DESC").fetchall()
    return [dict(zip(("node_num", "label", "added_at", "retired_at", "retired_by"), r)) for r in rows]


def list_all(db: sqlite_utils.Database) -> list[Bracelet]:
    rows = db.execute(
        "SELECT node_num, label, public_key, pinned_at, cancel_pin_hash IS NOT NULL, "
        "duress_pin_hash IS NOT NULL, added_at, hw_model, firmware, firmware_seen_at FROM bracelets "
        "ORDER BY label").fetchall()
    return [Bracelet(r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5]), r[6], r[7], r[8], r[9]) for r in rows]


def note_device(db: sqlite_utils.Database, num: int, hw_model: str, firmware: str, at: float) -> None:
    """What the bracelet itself said it is (provisioning, a check over the mesh)."""
    db.execute("UPDATE bracelets SET hw_model=?, firmware=?, firmware_seen_at=? WHERE node_num=?",
               (hw_model, firmware, at, num))


def key_pin_hashes(db: sqlite_utils.Database, key: pins.PinKey) -> int:
    """Key the PIN hashes made before the station had a PIN key; returns how many were."""
    done = 0
    for num, *hashes in db.execute("SELECT node_num, cancel_pin_hash, duress_pin_hash FROM bracelets").fetchall():
        keyed = [key.upgrade(h) for h in hashes]
        if any(keyed):
            db.execute("UPDATE bracelets SET cancel_pin_hash=?, duress_pin_hash=? WHERE node_num=?",
                       (keyed[0] or hashes[0], keyed[1] or hashes[1], num))
            done += sum(1 for k in keyed if k)
    return done


def pins_under_other_keys(db: sqlite_utils.Database, key: pins.PinKey) -> list[int]:
    """Bracelets with a PIN this station's key cannot check (a restore without the old pin.key)."""
    out = []
    for num, *hashes in db.execute("SELECT node_num, cancel_pin_hash, duress_pin_hash FROM bracelets").fetchall():
        ids = {pins.key_id_of(h) for h in hashes} - {None, ""}   # "": not keyed yet, still checkable
        if ids - {key.id}:
            out.append(num)
    return out


def pin_hashes(db: sqlite_utils.Database, num: int) -> tuple[str | None, str | None]:
    row = db.execute("SELECT cancel_pin_hash, duress_pin_hash FROM bracelets WHERE node_num=?", (num,)).fetchone()
    return (row[0], row[1]) if row else (None, None)


CONSENT_CHOICES = {
    "publish": ("never", "verified", "at-once"),
    "name_mode": ("pseudonym", "real", "none"),
    "precision": ("exact", "1km", "10km", "city", "none"),
}


def set_consent(db: sqlite_utils.Database, num: int, changes: dict, actor: str, at: float) -> dict:
    """Validate and record consent and verification fields; returns what was stored.

    Keys: publish, name_mode, pseudonym, real_name, precision, map_link, languages (a list),
    approvals, publish_after_min (None clears it), position_updates.
    """
    import json

    out: dict = {}
    for key, value in changes.items():
        if key in CONSENT_CHOICES:
            if value not in CONSENT_CHOICES[key]:
                raise RegistryError("{field} must be one of {choices}", field=key, choices=", ".join(CONSENT_CHOICES[key]))
            out[key] = value
        elif key in ("pseudonym", "real_name"):
            text = (value or "").strip()
            if len(text) > 64:
                raise RegistryError("{field} is at most 64 characters", field=key)
            out[key] = text or None
        elif key in ("map_link", "position_updates"):
            out[key] = int(bool(value))
        elif key == "languages":
            langs = [x.strip() for x in value if x.strip()]
            if not langs or not all(x.isalpha() and 2 <= len(x) <= 3 for x in langs):
                raise RegistryError("languages are codes such as en,fr,ar")
            out[key] = json.dumps(langs)
        elif key == "approvals":
            approvals = _parse(value, int)
            if approvals is None or not 1 <= approvals <= 10:
                raise RegistryError("approvals is from 1 to 10")
            out[key] = approvals
        elif key == "publish_after_min":
            minutes = None if value is None else _parse(value, float)
            if value is not None and (minutes is None or not 0 <= minutes <= 10080):
                raise RegistryError("publish_after_min is from 0 to 10080 minutes (a week)")
            out[key] = minutes
        else:
            raise RegistryError("unknown consent field {field}", field=key)
    if not db.execute("SELECT 1 FROM bracelets WHERE node_num=?", (num,)).fetchone():
        raise RegistryError("{node} is not registered (station bracelets add first)", node=f"!{num:08x}")
    if out:
        db.execute(f"UPDATE bracelets SET {', '.join(f'{k}=?' for k in out)} WHERE node_num=?", (*out.values(), num))
        db.execute("INSERT INTO events (incident_id, at, actor, action, detail) VALUES (NULL,?,?,?,?)",
                   (at, actor, "consent changed", f"!{num:08x}: {', '.join(sorted(out))}"))
    return out
