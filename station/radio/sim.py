"""A virtual radio running a scenario, on a pty or TCP port: what `port = "sim"`, `station demo`
and `station radio simulate` use."""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

from station.radio.virtual import scenarios
from station.radio.virtual.device import VirtualRadio
from station.radio.virtual.firmware import DEFAULT as DEFAULT_FIRMWARE
from station.radio.virtual.transports import PtyPort, TcpPort

log = logging.getLogger(__name__)


class SimRadio:
    def __init__(self, scenario: str = "demo", *, speed: float = 1.0, pty: str | None = None,
                 tcp: int | None = None, corpus_dir: Path | None = None, replay_last: int = 0,
                 start_delay_s: float = 0.0, firmware: str | None = None, device: str | None = None,
                 wait_for_host: bool = False, limit: int | None = None, **radio_options):
        if scenario not in scenarios.SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(scenarios.SCENARIOS)}")
        self.scenario = scenario
        self.radio = VirtualRadio(replay_last=replay_last, firmware=firmware or DEFAULT_FIRMWARE,
                                  device=device or "heltec-v3", **radio_options)
        self.stage = scenarios.Stage(self.radio, speed=speed, corpus_dir=corpus_dir, limit=limit)
        self._tmp: tempfile.TemporaryDirectory | None = None
        if tcp is not None:
            self.transport = TcpPort(self.radio, tcp)
        else:
            if pty is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="station-vradio-")
                pty = str(Path(self._tmp.name) / "radio")
            self.transport = PtyPort(self.radio, pty)
        self.start_delay_s = start_delay_s
        self.wait_for_host = wait_for_host
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._play, name="vradio-scenario", daemon=True)

    @property
    def port(self) -> str:
        if isinstance(self.transport, TcpPort):
            return f"tcp://127.0.0.1:{self.transport.port}"
        return str(self.transport.link)

    def start(self, *, play: bool = True) -> "SimRadio":
        """Plug the radio in; `play`: start the scenario now (else call `play()`, e.g. once a
        station is connected, so that the radio's small client queue does not overflow)."""
        self.transport.plug()
        if play:
            self.play()
        return self

    def play(self) -> None:
        self._thread.start()

    def _play(self) -> None:
        try:
            # Scenario packets wait in the radio's small client queue (8 or 32) until a host has
            # finished its handshake; a benchmark waits for the host instead, so as to lose none.
            if self.wait_for_host:
                while not self.radio.client_ready.wait(0.2):
                    if self.stage.stop.is_set():
                        return
            self.stage.stop.wait(self.start_delay_s)
            scenarios.run(self.scenario, self.stage)
        except Exception:
            log.exception("scenario %s failed", self.scenario)
        finally:
            self.done.set()

    def stop(self) -> None:
        self.stage.stop.set()
        if self._thread.ident is not None:
            self._thread.join(2)
        self.radio.router.power_off()
        self.transport.unplug()
        if self._tmp is not None:
            self._tmp.cleanup()
