"""The relay's log lines: outcomes with stable fields, never a credential."""

from __future__ import annotations

import logging

from station.logs import LogfmtFormatter


def lines(caplog) -> list[str]:
    fmt = LogfmtFormatter(timestamps=False)
    return [fmt.format(r) for r in caplog.records]


def test_relay_logs_outcomes_without_credentials(relay, caplog):
    with caplog.at_level(logging.INFO):
        h = relay(kinds=("x", "mastodon")).start()
        h.bracelet(publish="at-once")
        h.incident()
        h.worker.wake()
        h.wait_states({("x", "alert"): "sent", ("mastodon", "alert"): "sent"})
    text = "\n".join(lines(caplog))
    assert "event=relay.sent" in text and "destination=x" in text
    assert "value-of-" not in text
