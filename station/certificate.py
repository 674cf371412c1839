"""The console's TLS certificate as coordinators check it: its SHA-256 fingerprint, the form a
browser shows in its certificate viewer, so that someone on the office LAN posing as the station
is told apart from it (systemd/nginx/make-certificate.sh makes the certificate)."""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from pathlib import Path


class CertificateError(Exception):
    pass


def fingerprint(path: Path | str) -> str:
    """SHA-256 of the certificate (DER), as colon-separated hex pairs."""
    try:
        pem = Path(path).read_text()
    except OSError as e:
        raise CertificateError(f"cannot read the console certificate {path}: {e.strerror or e}") from None
    try:
        der = ssl.PEM_cert_to_DER_cert(pem)
    except ValueError:
        raise CertificateError(f"{path} is not a PEM certificate") from None
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def shown(cfg) -> str | None:
    """What the console shows coordinators to compare with their browser: the configured
    certificate's fingerprint, why it cannot be read, or None when there is none."""
    if not cfg.console["certificate"]:
        return None
    try:
        return fingerprint(cfg.console["certificate"])
    except CertificateError as e:
        return str(e)


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
