"""Retention, from the view of someone who seizes the station months later: what the office said
it would forget is gone from the file itself, and what the wearer's alerts need is still there."""

from __future__ import annotations

import json
import time

import pytest

from station import daemon, retention
from station.radio.virtual.bracelets import cast

from .conftest import wait_until

P = cast()
AMINA, VISITOR = P["amina"].num, P["visitor"].num
DAY = 86400.0


def age_everything(h, days: float) -> None:
    """As if what the scenario sent had arrived `days` ago."""
    shift = days * DAY
    with h.db() as c:
        for table, col in (("packets", "received_at"), ("positions", "received_at"), ("telemetry", "received_at"),
                           ("rejects", "at"), ("incidents", "opened_at")):
            c.execute(f"UPDATE {table} SET {col} = {col} - ?", (shift,))
        c.execute("UPDATE nodes SET last_heard = last_heard - ?, first_heard = first_heard - ?", (shift, shift))
        c.execute("UPDATE incidents SET last_press_at = last_press_at - ?, resolved_at = resolved_at - ?",
                  (shift, shift))


def purge(h) -> dict:
    station = h.station
    assert station.purger.start()
    assert station.purger.done.wait(30), "the purge did not finish"
    return json.loads(h.rows("SELECT value FROM station_state WHERE key='retention'")[0][0])


def file_bytes(h, *, settled: bool = False) -> bytes:
    """Every byte a seizer finds: the database file and its write-ahead log. `settled`: as the
    card is once the station has been quiet for a while (its writer empties the log after 10 s
    of quiet; a seizer comes later than that)."""
    path = h.cfg.database_path
    wal = path.with_name(path.name + "-wal")
    if settled:
        h.station.writer.idle_checkpoint_s = 0.2
        wait_until(lambda: not wal.exists() or wal.stat().st_size == 0, 15, what="the log to be emptied")
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_an_old_unverified_alert_keeps_its_opening_packet_and_the_rest_of_the_stranger_goes(harness):
    """A visitor's node sent an SOS on the public channel a month ago: the alert stays on record
    with the packet that raised it; its other packets, its position and its track do not."""
    h = harness("unregistered", "pty")
    h.settle()
    stored = h.count("SELECT COUNT(*) FROM packets WHERE from_num=?", (VISITOR,))
    [(opening,)] = h.rows("SELECT opening_packet FROM incidents WHERE node_num=?", (VISITOR,))
    age_everything(h, 31)
    purge(h)
    assert [r[0] for r in h.rows("SELECT id FROM packets WHERE from_num=?", (VISITOR,))] == [opening]
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (VISITOR,)) == 0
    assert h.count("SELECT SUM(packets) FROM traffic_days WHERE node_num=?", (VISITOR,)) == stored - 1
    assert h.rows("SELECT lat FROM nodes WHERE num=?", (VISITOR,))[0][0] is None      # named on the alert page


def test_a_silent_strangers_name_and_packets_leave_no_trace_in_the_database_file(harness):
    """A node heard once on the public channel, never an alert: after the retention period a
    seizer reading the raw file (free pages and WAL included) finds neither its name nor its
    position."""
    h = harness("idle", "pty")
    stranger = P["visitor"]
    h.sim.radio.emit_packet(stranger.nodeinfo())
    h.sim.radio.emit_packet(stranger.position(14.70011, -17.45021))
    wait_until(lambda: h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (VISITOR,)) == 1,
               what="the stranger's position")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM nodes WHERE num=? AND long_name IS NOT NULL", (VISITOR,)),
               what="the stranger's name")
    assert stranger.long_name.encode() in file_bytes(h)
    age_everything(h, 31)
    got = purge(h)
    assert got["removed"]["packets"] == 2 and got["removed"]["nodes"] >= 1
    assert h.count("SELECT COUNT(*) FROM nodes WHERE num=?", (VISITOR,)) == 0
    assert h.count("SELECT SUM(packets) FROM traffic_days WHERE node_num=?", (VISITOR,)) == 2
    raw = file_bytes(h, settled=True)
    assert stranger.long_name.encode() not in raw


def test_recent_traffic_and_registered_bracelets_are_left_alone_by_the_strangers_rule(harness):
    h = harness("idle", "pty")
    h.sim.radio.emit_packet(P["visitor"].position(14.70011, -17.45021))
    h.sim.radio.emit_packet(P["amina"].position(14.6937, -17.4441))
    wait_until(lambda: h.count("SELECT COUNT(*) FROM positions") == 2, what="two positions")
    age_everything(h, 29)
    got = purge(h)
    assert sum(got["removed"].values()) == 0 and h.count("SELECT COUNT(*) FROM positions") == 2


def test_a_wearers_old_track_goes_but_the_alert_keeps_where_it_was_raised(harness):
    h = harness("sos", "pty")
    h.settle()
    [(iid, lat, opening)] = h.rows("SELECT id, lat, opening_packet FROM incidents")
    h.station.writer.call(lambda db: db.execute(
        "UPDATE incidents SET state='resolved', resolution='safe', resolved_at=? WHERE id=?", (time.time(), iid)))
    track = h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (AMINA,))
    assert track >= 1
    age_everything(h, 91)
    got = purge(h)
    assert got["removed"]["positions"] >= track
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (AMINA,)) == 0
    assert h.rows("SELECT lat, opening_packet FROM incidents WHERE id=?", (iid,))[0][:] == (lat, opening)
    assert h.rows("SELECT raw IS NOT NULL FROM packets WHERE id=?", (opening,))[0][0] == 1
    assert h.count("SELECT COUNT(*) FROM packets WHERE from_num=? AND raw IS NOT NULL AND id != ?",
                   (AMINA, opening)) == 0
    assert h.count("SELECT COUNT(*) FROM events WHERE incident_id=?", (iid,)) >= 1      # the record stays


def test_while_her_alert_is_open_nothing_of_her_track_is_removed(harness):
    h = harness("sos", "pty")
    h.settle()
    track = h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (AMINA,))
    packets = h.count("SELECT COUNT(*) FROM packets WHERE from_num=? AND raw IS NOT NULL", (AMINA,))
    age_everything(h, 200)
    purge(h)
    assert h.count("SELECT COUNT(*) FROM positions WHERE node_num=?", (AMINA,)) == track
    assert h.count("SELECT COUNT(*) FROM packets WHERE from_num=? AND raw IS NOT NULL", (AMINA,)) == packets


def test_zero_days_keeps_everything(harness):
    h = harness("idle", "pty", retention={"unregistered_days": 0, "track_days": 0})
    h.sim.radio.emit_packet(P["visitor"].position(14.70011, -17.45021))
    wait_until(lambda: h.count("SELECT COUNT(*) FROM positions") == 1, what="a position")
    age_everything(h, 3650)
    got = purge(h)
    assert sum(got["removed"].values()) == 0 and h.count("SELECT COUNT(*) FROM positions") == 1


def test_a_large_purge_goes_in_batches_and_an_alert_meanwhile_is_stored_at_once(harness, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 50)
    h = harness("idle", "pty")
    old = time.time() - 40 * DAY
    h.station.writer.call(lambda db: db.conn.executemany(
        "INSERT INTO rejects (at, source, reason, detail) VALUES (?, 'radio', 'corrupt frame', 'x')",
        [(old,)] * 2000))
    commits = h.station.writer.stats.commits
    assert h.station.purger.start()
    h.sim.stage.press("amina")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM incidents") == 1, what="the alert during the purge")
    assert h.station.purger.done.wait(30)
    assert h.count("SELECT COUNT(*) FROM rejects") == 0
    assert h.station.writer.stats.commits - commits >= 2000 // 50


def test_the_daemon_purges_by_itself_and_the_health_page_says_what_went(harness, monkeypatch):
    monkeypatch.setattr(daemon, "RETENTION_FIRST_S", 0.2)
    h = harness("idle", "pty")
    wait_until(lambda: h.count("SELECT COUNT(*) FROM station_state WHERE key='retention'"), 15,
               what="the daemon's first purge")
    from station import queries
    from station.storage import db as dbmod
    status = queries.status(dbmod.connect(h.cfg.database_path))
    assert status["retention"]["policy"] == "unregistered nodes 30 days, bracelet tracks 90 days"
    from station import users
    from tests.web.test_console_security import PASSWORD, login
    from web.app import create_app
    h.station.writer.call(lambda db: users.add(db, "viewer", "viewer", PASSWORD, time.time(), "test"))
    app = create_app(h.cfg)
    app.config["TESTING"] = True
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/health").get_data(as_text=True)
    assert "Retention" in page and "last purge" in page and "bracelet tracks 90 days" in page


@pytest.mark.parametrize("value", [-1, "30"])
def test_a_wrong_retention_value_stops_with_the_key_named(value):
    from station import config
    with pytest.raises(config.ConfigError, match=r"\[retention\] track_days"):
        config.validate({"retention": {"track_days": value}})


def test_doctor_says_when_the_purge_failed_or_has_not_run_for_days(tmp_path):
    from station import doctor
    from station.storage import records
    from station.storage.writer import Writer
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n[gpio]\nenabled = false\n')
    cfg.chmod(0o640)
    w = Writer(tmp_path / "s.db").start()
    check = {c.name: c for c in doctor.run(str(cfg))}["retention"]
    assert check.status == doctor.OK and "no purge yet" in check.message
    w.call(lambda db: records.set_state(db, "retention", {"at": time.time(), "removed": {},
                                                          "error": "OperationalError: disk I/O error"}, time.time()))
    w.stop()
    check = {c.name: c for c in doctor.run(str(cfg))}["retention"]
    assert check.status == doctor.FAIL and "disk I/O error" in check.message
