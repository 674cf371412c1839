"""A wearer who keeps pressing is one incident, however long she keeps pressing: the fold window
runs from her latest press, not her first. A press after a quiet window is a new alert."""

from __future__ import annotations

import pytest

from station import incidents
from station.decode.packets import Alert
from station.storage.writer import Writer

WINDOW = 600.0
AMINA = 0xB5A1E001


@pytest.mark.parametrize("presses, expected_incidents", [
    ([0, 500, 1000, 1500], 1),        # every press within 10 min of the one before: one, 4 presses
    ([0, 601], 2),                    # quiet for longer than the window: a new alert
    ([0, 500, 1000, 1601], 2),        # the window restarts at each press
    ([0, 600], 1),                    # exactly at the window's edge still folds
])
def test_presses_fold_while_each_comes_within_the_window_of_the_last(tmp_path, presses, expected_incidents):
    w = Writer(tmp_path / "s.db").start()
    try:
        for at in presses:
            w.call(lambda db, at=at: incidents.raise_alert(db, AMINA, Alert("alert_app", "SOS"), 1_790_000_000 + at,
                                                           packet_row=None, fold_window_s=WINDOW, drill=False))
        rows = w.db.execute("SELECT press_count FROM incidents ORDER BY id").fetchall()
    finally:
        w.stop()
    assert len(rows) == expected_incidents and sum(r[0] for r in rows) == len(presses)
