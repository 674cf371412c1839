"""Buzzer, LEDs and the acknowledge button through gpiozero's MockFactory, alone and wired to a
running station."""

from __future__ import annotations

import time

import pytest
from gpiozero import Device

from station import indicators
from station.config import validate
from station.indicators import GpioIndicators, NullIndicators, alarm_level, make_indicators

from .conftest import wait_until

PINS = validate({}).gpio


def beeping(pin, seconds=0.6) -> bool:
    """True if the pin changes state within `seconds` (blinking or beeping)."""
    first = pin.state
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pin.state != first:
            return True
        time.sleep(0.01)
    return False


def rhythm(pin, periods: int = 6, timeout: float = 10.0) -> tuple[float, float]:
    """The median seconds on and off of a beeping or blinking pin, from the mock pin's own record
    of each change and how long the state before it lasted."""
    pin.clear_states()
    wait_until(lambda: len(pin.states) > 2 * periods + 1, timeout, what=f"{periods} on-off periods")
    changes = pin.states[2:]                 # the first lasted since clear_states(): a part period
    on = sorted(c.timestamp for c in changes if not c.state)    # turned off: it had been on this long
    off = sorted(c.timestamp for c in changes if c.state)
    return on[len(on) // 2], off[len(off) // 2]


@pytest.mark.parametrize("open_n, duress_n, ack_n, silenced, level", [
    (0, 0, 0, False, "none"),
    (1, 0, 0, False, "open"),
    (1, 0, 0, True, "silenced"),
    (0, 0, 2, False, "acknowledged"),
    (1, 1, 0, True, "duress"),      # the button never silences a duress
    (0, 1, 1, False, "duress"),
])
def test_alarm_level_table(open_n, duress_n, ack_n, silenced, level):
    assert alarm_level(open_n, duress_n, ack_n, silenced) == level


@pytest.mark.slow          # seconds of real timing; the quick loop leaves it to the full run
def test_outputs_follow_the_alarm_level(factory):
    ind = GpioIndicators(PINS, lambda: None, lambda: None, factory)
    buzzer, alert = factory.pin(PINS["buzzer"]), factory.pin(PINS["alert_led"])
    ind.alarm(indicators.OPEN)
    assert beeping(buzzer, 1.2) and beeping(alert, 1.2)
    # An ordinary alert's slow rhythm, which the duress pattern must not share.
    beep_on, beep_off = rhythm(buzzer, periods=3)
    assert 0.15 < beep_on < 0.5 and beep_off > 0.6
    ind.alarm(indicators.SILENCED)
    wait_until(lambda: buzzer.state == 0, 2, what="buzzer off")
    assert not beeping(buzzer) and beeping(alert, 1.2)
    ind.alarm(indicators.ACKNOWLEDGED)
    wait_until(lambda: (alert.state, buzzer.state) == (1, 0), 2, what="steady alert light, no sound")
    ind.alarm(indicators.NONE)
    wait_until(lambda: (alert.state, buzzer.state) == (0, 0), 2, what="all off")
    ind.link(True)
    assert factory.pin(PINS["link_led"]).state == 1
    ind.close()


def test_press_acknowledges_and_hold_silences(factory):
    calls = []
    cfg = dict(PINS, hold_s=0.2)
    ind = GpioIndicators(cfg, lambda: calls.append("ack"), lambda: calls.append("silence"), factory)
    button = factory.pin(cfg["ack_button"])
    button.drive_low()     # pressed (pull-up)
    button.drive_high()
    wait_until(lambda: calls == ["ack"], 2, what="ack on short press")
    button.drive_low()
    wait_until(lambda: calls == ["ack", "silence"], 2, what="silence while held")
    button.drive_high()    # gpiozero runs the release handler in this call: a stray ack would be here now
    assert calls == ["ack", "silence"]
    ind.close()


def test_no_gpio_off_a_pi_disables_indicators_with_a_reason(monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    previous = Device.pin_factory
    Device.pin_factory = None
    try:
        ind = make_indicators(dict(PINS, enabled="auto"), lambda: None, lambda: None)
        assert isinstance(ind, NullIndicators) and ind.reason.startswith("no GPIO")
        with pytest.raises(RuntimeError, match="GPIO is enabled in the config but not usable"):
            make_indicators(dict(PINS, enabled=True), lambda: None, lambda: None)
    finally:
        Device.pin_factory = previous


def test_station_rings_on_an_alert_and_the_button_acknowledges_it(harness, factory):
    h = harness("sos", "pty", pin_factory=factory, gpio={"enabled": True, "hold_s": 0.3})
    h.settle()
    buzzer = factory.pin(PINS["buzzer"])
    wait_until(lambda: h.station.indicators.level == "open", 3, what="alarm")
    assert beeping(buzzer, 1.2)
    assert factory.pin(PINS["link_led"]).state == 1
    button = factory.pin(PINS["ack_button"])
    button.drive_low()
    time.sleep(0.05)
    button.drive_high()
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents WHERE state='acknowledged' "
                               "AND acknowledged_by='button'") == 1, 3, what="button acknowledgement")
    wait_until(lambda: h.station.indicators.level == "acknowledged", 3, what="buzzer off")
    assert buzzer.state == 0


def test_acknowledging_from_the_command_line_stops_the_buzzer(harness, factory):
    from station import incidents
    from station.cli.common import write
    from station.storage import db as dbmod

    h = harness("sos", "tcp", pin_factory=factory, gpio={"enabled": True})
    h.settle()
    wait_until(lambda: h.station.indicators.level == "open", 3, what="alarm")
    other = dbmod.connect(h.cfg.database_path)        # another process's connection, as the CLI's
    write(other, lambda d: incidents.acknowledge(d, 1, "cli:tester", time.time()))
    wait_until(lambda: h.station.indicators.level == "acknowledged", 3, what="alarm to follow the database")


@pytest.mark.slow          # seconds of real timing; the quick loop leaves it to the full run
def test_duress_cancel_rings_the_duress_pattern(harness, factory):
    h = harness("duress", "pty", pin_factory=factory, gpio={"enabled": True})
    h.settle()
    wait_until(lambda: h.station.indicators.level == "duress", 3, what="duress alarm")
    # The room must tell a duress from an ordinary alert by ear and by eye: fast beeps (0.1 s on,
    # 0.1 s off) against an alert's slow ones (0.2 s on, 0.8 s off); a fast-blinking light.
    buzzer, light = factory.pin(PINS["buzzer"]), factory.pin(PINS["alert_led"])
    beep_on, beep_off = rhythm(buzzer)
    blink_on, blink_off = rhythm(light)
    assert beep_off < 0.45 and beep_on < 0.18 and blink_off < 0.35 and blink_on < 0.35
