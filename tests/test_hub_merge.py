"""The hub's rules on its own database, from the coordinator's view at the hub: a redelivered event
changes nothing, a station that reports late is told of the acknowledgement made elsewhere, the
first station to ask holds the claim and the others are told who does, and garbage is refused."""

from __future__ import annotations

import json

import pytest

from station.hub import merge, schema
from station.storage import db as dbmod

AMINA = 0xB5A1E001


@pytest.fixture
def hub(tmp_path):
    db = dbmod.connect(tmp_path / "hub.db")
    schema.migrate(db)
    return db


def opened(local: int, packet_id: int = 77, **kw) -> dict:
    return {"incident": local, "node": AMINA, "opened_at": 1000.0, "source": "detection_sensor", "trust": "registered",
            "drill": 0, "state": "open", "packet_id": packet_id, "snr": 6.5, "hops": 1, "heard_at": 1000.2, **kw}


def told(db, station: str) -> list[dict]:
    return [json.loads(b) for (b,) in db.execute("SELECT body FROM outgoing WHERE station=? ORDER BY id", (station,))]


def test_an_event_delivered_twice_is_applied_once(hub):
    assert merge.apply(hub, "kibera", 1, "incident", 1000, opened(5), 1001, 600)
    assert not merge.apply(hub, "kibera", 1, "incident", 1000, opened(5), 1002, 600)
    assert hub.execute("SELECT COUNT(*) FROM receptions").fetchone()[0] == 1
    assert hub.execute("SELECT events FROM stations WHERE id='kibera'").fetchone()[0] == 1


def test_the_same_packet_at_two_stations_is_one_alert_and_a_drill_never_joins_it(hub):
    merge.apply(hub, "kibera", 1, "incident", 1000, opened(5), 1001, 600)
    merge.apply(hub, "mathare", 1, "incident", 1000, opened(9, snr=-3.0, hops=2), 1001, 600)
    merge.apply(hub, "korogocho", 1, "incident", 1000, opened(2, drill=1), 1001, 600)
    assert hub.execute("SELECT COUNT(*) FROM hub_incidents").fetchone()[0] == 2
    assert hub.execute("SELECT station, hops FROM receptions WHERE hub_incident=1 ORDER BY station").fetchall() == \
        [("kibera", 1), ("mathare", 2)]


def test_a_station_that_reports_after_the_acknowledgement_is_told_at_once(hub):
    merge.apply(hub, "kibera", 1, "incident", 1000, opened(5), 1001, 600)
    merge.apply(hub, "kibera", 2, "state", 1010, {"incident": 5, "state": "acknowledged", "acknowledged_by": "Fatou",
                                                  "acknowledged_at": 1010.0}, 1011, 600)
    merge.apply(hub, "mathare", 1, "incident", 1000, opened(9), 1020, 600)
    assert told(hub, "mathare") == [{"kind": "acknowledged", "incident": 9, "by": "Fatou", "station": "kibera",
                                     "at": 1010.0}]
    assert told(hub, "kibera") == []


def test_the_first_station_to_ask_holds_the_claim_and_the_others_are_told_who(hub):
    for st, local in (("kibera", 5), ("mathare", 9)):
        merge.apply(hub, st, 1, "incident", 1000, opened(local), 1001, 600)
    merge.apply(hub, "mathare", 2, "claim", 1002, {"incident": 9, "destination": "x"}, 1002, 600)
    merge.apply(hub, "kibera", 2, "claim", 1003, {"incident": 5, "destination": "x"}, 1003, 600)
    merge.apply(hub, "mathare", 3, "claim", 1004, {"incident": 9, "destination": "x"}, 1004, 600)
    assert [(m["granted"], m["holder"]) for m in told(hub, "mathare")] == [(True, "mathare"), (True, "mathare")]
    assert [(m["granted"], m["holder"]) for m in told(hub, "kibera")] == [(False, "mathare")]


@pytest.mark.parametrize("data", [{}, {"incident": "five"}, {"node": AMINA}])
def test_an_event_the_hub_cannot_apply_is_refused_and_changes_nothing(hub, data):
    with pytest.raises((KeyError, ValueError, TypeError)):
        hub.execute("BEGIN")
        try:
            merge.apply(hub, "kibera", 1, "incident", 1000, data, 1001, 600)
        finally:
            hub.execute("ROLLBACK")
    assert hub.execute("SELECT COUNT(*) FROM applied").fetchone()[0] == 0


def test_the_hub_keeps_her_newest_position_each_post_and_each_stations_health(hub):
    merge.apply(hub, "kibera", 1, "incident", 1000, opened(5), 1001, 600)
    merge.apply(hub, "mathare", 1, "incident", 1000, opened(9), 1001, 600)
    merge.apply(hub, "mathare", 2, "position", 1100, {"incident": 9, "lat": -1.26, "lon": 36.85, "fix_at": 1100.0},
                1101, 600)
    merge.apply(hub, "kibera", 2, "position", 1050, {"incident": 5, "lat": -1.25, "lon": 36.84, "fix_at": 1050.0},
                1102, 600)                      # older, arriving later: the newer one stays
    merge.apply(hub, "kibera", 3, "presses", 1060, {"incident": 5, "press_count": 3}, 1103, 600)
    merge.apply(hub, "kibera", 4, "post", 1070, {"incident": 5, "destination": "x", "kind": "alert", "seq": 0,
                                                 "state": "sent", "url": "https://x.example/1", "claim": "granted"},
                1104, 600)
    merge.apply(hub, "kibera", 5, "health", 1080, {"radio": "connected", "queue": 0, "lat": -1.3, "lon": 36.8},
                1105, 600)
    assert hub.execute("SELECT lat, lon, press_count FROM hub_incidents").fetchone() == (-1.26, 36.85, 3)
    assert hub.execute("SELECT station, state, claim FROM posts").fetchall() == [("kibera", "sent", "granted")]
    health, lat = hub.execute("SELECT health, lat FROM stations WHERE id='kibera'").fetchone()
    assert json.loads(health)["radio"] == "connected" and lat == -1.3
