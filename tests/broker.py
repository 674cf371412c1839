"""A real mosquitto (Debian's package) for the network tests, configured as `station hub
broker-config` writes it: TLS with a CA of its own, one account per station and the hub, the ACL,
persistence on disk. It can be stopped, started again and killed."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from station.hub import broker
from tests.conftest import free_port, listening, wait_until
from tests.fakes.smtp import make_ca_and_server


class Mosquitto:
    def __init__(self, folder: Path, accounts: dict[str, str], **limits):
        self.folder = folder
        self.accounts = accounts
        self.port = free_port()
        self.ca, cert, key = make_ca_and_server(folder / "tls", "localhost")
        self.conf = broker.write(folder, accounts=accounts, cert=cert, key=key, ca=self.ca, port=self.port,
                                 bind="127.0.0.1", user="root" if os.geteuid() == 0 else None, **limits)
        self.proc: subprocess.Popen | None = None
        self.url = f"mqtts://localhost:{self.port}"

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "mosquitto.log", "ab"))
        wait_until(lambda: listening(self.port) or self.proc.poll() is not None, 10, what="mosquitto to listen")
        assert self.proc.poll() is None, (self.folder / "mosquitto.log").read_text()
        return self

    def stop(self) -> None:
        """As systemctl stop does: SIGTERM, and mosquitto writes its persistence file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def password_file(self, account: str) -> str:
        p = self.folder / f"{account}.password"
        p.write_text(self.accounts[account] + "\n")
        p.chmod(0o600)
        return str(p)
