"""Logs: one key=value line per event with stable fields; never a PIN, a credential or a precise
position at the default level; the raw-frame log only when asked for."""

from __future__ import annotations

import logging
import os

from station.logs import LogfmtFormatter, event, setup

from .conftest import wait_until


def lines(caplog) -> list[str]:
    fmt = LogfmtFormatter(timestamps=False)
    return [fmt.format(r) for r in caplog.records]


def test_events_are_logfmt_with_stable_fields(caplog):
    log = logging.getLogger("station.test")
    with caplog.at_level(logging.INFO):
        event(log, "alert.opened", logging.WARNING, incident=3, node="!b5a1e001", trust="registered")
        event(log, "radio.lost", logging.WARNING, 'radio link lost "port closed"', port="/dev/meshtastic")
    first, second = lines(caplog)
    assert first == "level=warning logger=station.test event=alert.opened incident=3 node=!b5a1e001 trust=registered"
    assert second.endswith('port=/dev/meshtastic msg="radio link lost \\"port closed\\""')


def test_a_duress_run_logs_events_but_no_pin_and_no_position(harness, caplog):
    with caplog.at_level(logging.INFO):
        h = harness("duress", "pty")
        h.settle()
        wait_until(lambda: any("event=alert.duress" in line for line in lines(caplog)), 5, what="duress event")
    text = "\n".join(lines(caplog))
    assert "event=alert.opened" in text and "event=radio.connected" in text
    for secret in ("2468", "1357", "14.6937", "17.4441"):
        assert secret not in text


def test_raw_frame_log_only_when_configured(harness, tmp_path):
    raw = tmp_path / "frames.log"
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup("WARNING", str(raw))
        h = harness("sos", "pty")
        h.settle()
        frames = raw.read_text().splitlines()
        assert len(frames) > 10 and all(len(line.split()) == 2 for line in frames)
        assert oct(os.stat(raw).st_mode & 0o777) == "0o640"
    finally:
        setup("WARNING", "")
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert not logging.getLogger("station.rawframes").isEnabledFor(logging.DEBUG)
