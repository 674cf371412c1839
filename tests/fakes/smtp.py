"""A real SMTP server on loopback (aiosmtpd) that requires STARTTLS with a certificate from a CA
of its own, as an NGO's own mail server would: what it accepted is in `.messages`."""

from __future__ import annotations

import datetime
import ssl
import threading
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_ca_and_server(folder: Path, host: str = "localhost") -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key): a CA and a certificate it signed for `host`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test NGO mail CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class _Handler:
    def __init__(self, server: "MailServer"):
        self.server = server

    async def handle_DATA(self, server, session, envelope):
        with self.server.lock:
            if self.server.refuse:
                return self.server.refuse
            self.server.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default),
                                         session.ssl is not None))
        return "250 OK queued"


class MailServer:
    def __init__(self, folder: Path, *, require_tls: bool = True):
        self.ca, cert, key = make_ca_and_server(folder)
        self.messages: list = []         # (recipients, email.message.Message, over TLS)
        self.refuse: str | None = None   # e.g. "451 try later": the next DATA is refused so
        self.lock = threading.Lock()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        handler = _Handler(self)
        from tests.conftest import free_port
        self.port = free_port()
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, server_hostname="localhost",
                                     require_starttls=require_tls, tls_context=context if require_tls else None)

    def start(self) -> "MailServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def to(self, address: str) -> list:
        with self.lock:
            return [m for rcpt, m, _ in self.messages if address in rcpt]
