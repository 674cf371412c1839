"""Alerting the room: alert LED, radio-link LED, internet LED, buzzer and acknowledge button.

`Indicators` is the narrow port; `GpioIndicators` drives real pins through gpiozero (tests
use its MockFactory), `NullIndicators` stands in where there is no GPIO. Button presses only
call the callbacks given; they never touch the database themselves.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable, Protocol

log = logging.getLogger(__name__)

# Alarm levels, from quiet to loud.
NONE, ACKNOWLEDGED, SILENCED, OPEN, DURESS = "none", "acknowledged", "silenced", "open", "duress"


class Indicators(Protocol):
    def link(self, up: bool) -> None: ...
    def internet(self, up: bool) -> None: ...
    def alarm(self, level: str) -> None: ...
    def chirp(self) -> None: ...
    def close(self) -> None: ...


class NullIndicators:
    def __init__(self, reason: str = "disabled"):
        self.reason = reason
        self.level = NONE

    def link(self, up: bool) -> None:
        pass

    def internet(self, up: bool) -> None:
        pass

    def alarm(self, level: str) -> None:
        self.level = level

    def chirp(self) -> None:
        pass

    def close(self) -> None:
        pass


class GpioIndicators:
    def __init__(self, pins: dict, on_ack: Callable[[], None], on_silence: Callable[[], None],
                 pin_factory=None):
        from gpiozero import LED, Button, Buzzer

        kw = {"pin_factory": pin_factory} if pin_factory is not None else {}
        self.alert_led = LED(pins["alert_led"], **kw)
        self.link_led = LED(pins["link_led"], **kw)
        self.internet_led = LED(pins["internet_led"], **kw)
        self.buzzer = Buzzer(pins["buzzer"], **kw)
        self.button = Button(pins["ack_button"], hold_time=pins.get("hold_s", 2.0), **kw)
        self._on_ack, self._on_silence = on_ack, on_silence
        self._held = False
        self.button.when_held = self._held_cb
        self.button.when_released = self._released_cb
        self.level = NONE
        self.chirps = 0

    # A press acknowledges on release, unless it was held long enough to mean "silence".
    def _held_cb(self) -> None:
        self._held = True
        self._on_silence()

    def _released_cb(self) -> None:
        if not self._held:
            self._on_ack()
        self._held = False

    def link(self, up: bool) -> None:
        self.link_led.on() if up else self.link_led.off()

    def internet(self, up: bool) -> None:
        self.internet_led.on() if up else self.internet_led.off()

    def alarm(self, level: str) -> None:
        if level == self.level:
            return
        self.level = level
        if level == DURESS:
            self.alert_led.blink(0.15, 0.15)
            self.buzzer.beep(0.1, 0.1)
        elif level == OPEN:
            self.alert_led.blink(0.5, 0.5)
            self.buzzer.beep(0.2, 0.8)
        elif level == SILENCED:
            self.alert_led.blink(0.5, 0.5)
            self.buzzer.off()
        elif level == ACKNOWLEDGED:
            self.alert_led.on()
            self.buzzer.off()
        else:
            self.alert_led.off()
            self.buzzer.off()

    def chirp(self) -> None:
        """A press test heard: two short beeps, unlike any alarm. Not over a sounding alarm (it
        would cut its pattern short, and the room's attention belongs to the alarm)."""
        if self.level in (NONE, ACKNOWLEDGED):
            self.chirps += 1
            self.buzzer.beep(0.08, 0.08, n=2)

    def close(self) -> None:
        for dev in (self.button, self.buzzer, self.alert_led, self.link_led, self.internet_led):
            dev.close()


def make_indicators(gpio_cfg: dict, on_ack: Callable[[], None], on_silence: Callable[[], None],
                    pin_factory=None) -> Indicators:
    enabled = gpio_cfg["enabled"]
    if enabled is False:
        return NullIndicators("disabled in config")
    try:
        with warnings.catch_warnings():
            # gpiozero warns once per pin library it cannot load; one log line says it all.
            warnings.simplefilter("ignore")
            return GpioIndicators(gpio_cfg, on_ack, on_silence, pin_factory)
    except Exception as e:  # BadPinFactory off a Pi, pins in use, no permission
        if enabled is True:
            raise RuntimeError(f"GPIO is enabled in the config but not usable: {e}") from e
        log.info("GPIO indicators disabled (no usable GPIO here: %s)", type(e).__name__)
        return NullIndicators(f"no GPIO: {type(e).__name__}")


def alarm_level(open_count: int, duress_count: int, acknowledged_count: int, silenced: bool) -> str:
    if duress_count:
        return DURESS           # a duress is never silenced by the button
    if open_count:
        return SILENCED if silenced else OPEN
    if acknowledged_count:
        return ACKNOWLEDGED
    return NONE
