"""Press tests: after provisioning, the technician presses the bracelet's button and the station
must hear it over the mesh. A technician opens a window for one bracelet (WINDOW_S); the first
press from it within the window is the test: stored like every alert (durably, with its packet),
but opened already closed as a test, so it never sounds the room alarm (the daemon chirps instead)
and is never relayed. The bracelet is then "press-tested" on that date, with the path the press
took (hops, SNR, RSSI).

Only a technician opens a window, and only for one node, for a minute: someone on the mesh cannot
turn a real alert into a test. A press outside a window is an alert as always.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from station.nodeids import node_id
from station.wording import Wording

WINDOW_S = 60.0


def incidents():
    from station import incidents as module     # it imports this module to open tests
    return module


@dataclass(frozen=True)
class PressTest:
    id: int
    node_num: int
    requested_by: str
    started_at: float
    expires_at: float
    state: str                    # waiting, passed, expired, cancelled
    passed_at: float | None
    incident_id: int | None
    hops: int | None
    snr: float | None
    rssi: int | None

    def path(self) -> str:
        hops = "hops unknown" if self.hops is None else "heard directly" if self.hops == 0 else \
            f"{self.hops} hop{'s' if self.hops > 1 else ''}"
        snr = "" if self.snr is None else f", SNR {self.snr:.1f} dB"
        rssi = "" if self.rssi is None else f", RSSI {self.rssi} dBm"
        return hops + snr + rssi


def start(db: sqlite_utils.Database, num: int, by: str, at: float, window_s: float = WINDOW_S) -> int:
    """Open a window for `num`; an earlier window still waiting is replaced."""
    db.execute("UPDATE press_tests SET state='cancelled' WHERE node_num=? AND state='waiting'", (num,))
    cur = db.execute("INSERT INTO press_tests (node_num, requested_by, started_at, expires_at, state) "
                     "VALUES (?,?,?,?, 'waiting')", (num, by, at, at + window_s))
    incidents().log_event(db, None, at, by, "press test started",
                          Wording("{node}: {n} s to press the button", node=node_id(num), n=f"{window_s:.0f}"))
    return cur.lastrowid


def take(db: sqlite_utils.Database, num: int, at: float) -> int | None:
    """The window a press from `num` at `at` falls in, if any."""
    row = db.execute("SELECT id FROM press_tests WHERE node_num=? AND state='waiting' AND started_at<=? "
                     "AND expires_at>=? ORDER BY id DESC LIMIT 1", (num, at, at)).fetchone()
    return row[0] if row else None


def passed(db: sqlite_utils.Database, test_id: int, incident_id: int, packet_row: int | None, at: float) -> None:
    hops = snr = rssi = None
    if packet_row is not None:
        hops, snr, rssi = db.execute("SELECT hops, snr, rssi FROM packets WHERE id=?", (packet_row,)).fetchone()
    db.execute("UPDATE press_tests SET state='passed', passed_at=?, incident_id=?, hops=?, snr=?, rssi=? WHERE id=?",
               (at, incident_id, hops, snr, rssi, test_id))
    t = get(db, test_id)
    incidents().log_event(db, incident_id, at, "wearer", "press-tested",
         Wording("{node}: press heard {n} s after the test began, {path}", node=node_id(t.node_num),
                 n=f"{at - t.started_at:.0f}", path=t.path()))


def expire(db: sqlite_utils.Database, test_id: int, at: float) -> bool:
    cur = db.execute("UPDATE press_tests SET state='expired' WHERE id=? AND state='waiting'", (test_id,))
    if cur.rowcount:
        t = get(db, test_id)
        incidents().log_event(db, None, at, t.requested_by, "press test failed",
             Wording("{node}: no press heard within {n} s", node=node_id(t.node_num),
                     n=f"{t.expires_at - t.started_at:.0f}"))
    return bool(cur.rowcount)


def get(db: sqlite_utils.Database, test_id: int) -> PressTest:
    row = db.execute("SELECT id, node_num, requested_by, started_at, expires_at, state, passed_at, incident_id, "
                     "hops, snr, rssi FROM press_tests WHERE id=?", (test_id,)).fetchone()
    return PressTest(*row)


def latest(db: sqlite_utils.Database) -> dict[int, PressTest]:
    """Each bracelet's latest finished test (passed or failed)."""
    rows = db.execute("SELECT id, node_num, requested_by, started_at, expires_at, state, passed_at, incident_id, "
                      "hops, snr, rssi FROM press_tests WHERE id IN (SELECT MAX(id) FROM press_tests "
                      "WHERE state IN ('passed', 'expired') GROUP BY node_num)").fetchall()
    return {r[1]: PressTest(*r) for r in rows}
