"""Email over SMTP, always encrypted: STARTTLS on 587 or implicit TLS on 465, the server's
certificate checked (against `ca_file` for an NGO's own server with its own CA). A server that
offers no STARTTLS is refused, never fallen back to plain text: the message carries where she is.
Each message's Message-ID names its notification, so a copy sent twice after a crash in the
middle of a send is recognisable as the same message."""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from station.escalation.channels import ChannelError, Outgoing, read_secret
from station.escalation.texts import subject


@dataclass
class Email:
    host: str
    port: int
    security: str              # starttls, tls
    sender: str
    username: str = ""
    password: str = ""
    ca_file: str = ""
    timeout_s: float = 20.0
    name: str = "email"

    @classmethod
    def from_config(cls, cfg) -> "Email":
        e = cfg.email
        password = read_secret(e["password_file"], cfg.base_dir, "[email] password_file") if e["password_file"] else ""
        sender = e["sender"] or f"station@{socket.gethostname()}"
        ca = e["ca_file"]
        if ca and not ca.startswith("/"):
            ca = str(cfg.base_dir / ca)
        return cls(e["host"], e["port"], e["security"], sender, e["username"], password, ca, e["timeout_s"])

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file or None)

    def send(self, message: Outgoing) -> str | None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = message.address
        msg["Subject"] = subject(message.text)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = f"<notification-{message.id}.alert-{message.incident_id}@{self.sender.split('@')[-1]}>"
        msg["X-Priority"] = "1"
        msg.set_content(message.text)
        try:
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=self._context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.security == "starttls":
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise ChannelError(f"{self.host}:{self.port} offers no STARTTLS: not sent in plain text",
                                           retry=False)
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password)
                refused = smtp.send_message(msg)
        except ChannelError:
            raise
        except ssl.SSLCertVerificationError as e:
            raise ChannelError(f"the certificate of {self.host} is not trusted: {e.verify_message}",
                               retry=False) from None
        except smtplib.SMTPAuthenticationError as e:
            raise ChannelError(f"{self.host} refused the login: {e.smtp_code}", retry=False) from None
        except smtplib.SMTPRecipientsRefused as e:
            code, why = next(iter(e.recipients.values()))
            raise ChannelError(f"{self.host} refused {message.address}: {code} {why.decode(errors='replace')}",
                               retry=500 > code >= 400) from None
        except smtplib.SMTPResponseException as e:
            raise ChannelError(f"{self.host} answered {e.smtp_code} {e.smtp_error.decode(errors='replace')[:120]}",
                               retry=e.smtp_code < 500) from None
        except (OSError, smtplib.SMTPException) as e:
            raise ChannelError(f"{self.host}:{self.port} unreachable: {e}") from None
        if refused:
            raise ChannelError(f"{self.host} refused {', '.join(refused)}", retry=False)
        return msg["Message-ID"]

    def close(self) -> None:
        pass
