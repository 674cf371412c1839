"""The console beside the hub: a coordinator sees every station's alerts as one, which stations
heard each (SNR, hops), who posted it and whether without the hub's claim, and a station that has
gone quiet; a console with no hub beside it shows no such page."""

from __future__ import annotations

import time

from station.hub import merge, schema
from station.storage import db as dbmod

from .test_console_security import app, login  # noqa: F401  (fixture)


def _hub(app):  # noqa: F811
    cfg = app.station_config
    db = dbmod.connect(cfg.base_dir / cfg.hub["database"])
    schema.migrate(db)
    now = time.time()
    for station, local, snr in (("kibera", 5, 6.5), ("mathare", 9, -4.0)):
        merge.apply(db, station, 1, "incident", now, {"incident": local, "node": 0xB5A1E001, "opened_at": now,
                                                     "source": "detection_sensor", "packet_id": 7, "snr": snr,
                                                     "hops": 1, "heard_at": now, "lat": -1.26, "lon": 36.85}, now, 600)
        merge.apply(db, station, 2, "health", now, {"radio": "connected", "queue": 0, "relay_online": True}, now, 600)
    merge.apply(db, "kibera", 3, "post", now, {"incident": 5, "destination": "x", "kind": "alert", "seq": 0,
                                               "state": "sent", "url": "https://x.example/1", "claim": "alone"}, now, 600)
    db.execute("UPDATE stations SET last_seen=? WHERE id='mathare'", (now - 3600,))
    db.conn.commit()
    db.conn.close()


def test_a_coordinator_sees_one_alert_with_each_station_that_heard_it(app):  # noqa: F811
    _hub(app)
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/network").get_data(as_text=True)
    assert 'href="/network"' in page
    assert page.count('<article id="alert-') == 1
    section = page[page.index('<article id="alert-'):page.index("</article>")]
    assert "<td>kibera</td><td>6.5</td>" in section and "<td>mathare</td><td>-4.0</td>" in section
    assert "x: sent by kibera" in section and "posted without the hub&#39;s claim" in section
    # Mathare has not spoken for an hour: flagged, the other not.
    assert page.count("station-silent") == 1 and 'id="station-mathare" class="warn"' in page
    assert "Le réseau" in c.get("/network", headers={"Accept-Language": "fr"}).get_data(as_text=True)


def test_a_console_with_no_hub_beside_it_has_no_network_page(app):  # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/", follow_redirects=True).get_data(as_text=True)
    assert 'href="/map"' in page and 'href="/network"' not in page
    assert c.get("/network").status_code == 404


def test_each_alert_lists_only_the_stations_that_heard_it_and_its_own_posts(app):  # noqa: F811
    """Two wearers' alerts on one page: a coordinator must not read Kibera's post of the first
    under the second, or think a station heard an alert it never did."""
    _hub(app)
    cfg = app.station_config
    db = dbmod.connect(cfg.base_dir / cfg.hub["database"])
    now = time.time()
    merge.apply(db, "mathare", 10, "incident", now, {"incident": 11, "node": 0xB5A1E002, "opened_at": now,
                                                     "source": "alert_app", "packet_id": 99, "snr": -9.5, "hops": 2,
                                                     "heard_at": now, "lat": -1.3, "lon": 36.8}, now, 600)
    db.conn.commit()
    db.conn.close()
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/network").get_data(as_text=True)
    assert page.count('<article id="alert-') == 2
    first, second = (page[i:page.index("</article>", i)] for i in
                     (page.index('<article id="alert-'), page.rindex('<article id="alert-')))
    newer, older = (first, second) if "!b5a1e002" in first else (second, first)
    assert "<td>mathare</td><td>-9.5</td>" in newer and "kibera" not in newer and "sent by" not in newer
    assert "<td>kibera</td><td>6.5</td>" in older and "-9.5" not in older and "x: sent by kibera" in older
