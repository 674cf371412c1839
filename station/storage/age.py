"""Backups encrypted with age (https://age-encryption.org), Debian's `age` package: the reference
implementation, packaged for every Raspberry Pi architecture (the Python bindings have no 32-bit
ARM wheel), streaming files of any size. The station holds only recipients (public keys): it can
seal a backup and never open one. The identity that opens them is kept off the station, by the
office's administrator, and given to `station restore` when one is needed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

# An X25519 recipient (age-keygen), or an SSH public key age accepts.
_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}|ssh-(ed25519|rsa) [A-Za-z0-9+/=]+( .*)?")
MAGIC = b"age-encryption.org/v1\n"


class AgeError(Exception):
    pass


def valid_recipient(text: str) -> bool:
    return bool(_RECIPIENT.fullmatch(text.strip()))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AgeError(f"{name} is not installed: sudo apt-get install age")
    return path


def _run(args: list[str], what: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AgeError(f"{what} took more than {timeout:.0f} s") from None
    if done.returncode != 0:
        detail = " ".join(line.removeprefix("age: error: ") for line in done.stderr.splitlines()
                          if not line.startswith("age: report"))
        raise AgeError(f"{what} failed: {detail or 'exit status ' + str(done.returncode)}")
    return done


def encrypt(src: Path, dst: Path, recipients: list[str], timeout: float = 3600) -> None:
    args = [_tool("age"), "--encrypt"]
    for r in recipients:
        args += ["--recipient", r]
    _run([*args, "--output", str(dst), str(src)], "encrypting the backup", timeout)


def decrypt(src: Path, dst: Path, identity: Path, timeout: float = 3600) -> None:
    _run([_tool("age"), "--decrypt", "--identity", str(identity), "--output", str(dst), str(src)],
         f"opening {src.name} with {identity}", timeout)


def keygen(out: Path) -> str:
    """A new identity written to `out` (0600, never overwritten); returns its recipient."""
    if out.exists():
        raise AgeError(f"{out} exists: choose another file (an identity is never overwritten)")
    _run([_tool("age-keygen"), "-o", str(out)], "age-keygen", 30)
    out.chmod(0o600)
    return recipient_of(out)


def recipient_of(identity: Path) -> str:
    return _run([_tool("age-keygen"), "-y", str(identity)], f"reading {identity}", 30).stdout.strip()


def is_sealed(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC
