"""A coordinator must see a reduced-precision position as the area it is, never as a point: the
firmware sends the centre of a cell (PositionPrecision.cpp), 5.8 km wide on the public channel."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from station.decode import precision
from web.maps import cell_of

from .test_console_security import app, login  # noqa: F401  (fixture)

LAT, LON = 14.7100, -17.4700        # a 13-bit cell centre would be elsewhere; the page shows what is stored


@pytest.fixture
def imprecise(app):   # noqa: F811
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()

    def add(db):
        db.execute("UPDATE incidents SET lat=?, lon=?, fix_at=?, fix_source='position_app', fix_precision_bits=13 "
                   "WHERE id=1", (LAT, LON, time.time()))
        db.execute("INSERT INTO positions (node_num, source, received_at, lat, lon, precision_bits) "
                   "VALUES (1, 'position_app', ?, ?, ?, 13)", (time.time(), LAT, LON))
    w.call(add)
    w.stop()
    return app


def test_the_incident_page_says_the_wearer_is_somewhere_in_a_cell(imprecise):
    c = imprecise.test_client()
    login(c, "coordinator")
    page = c.get("/alerts/1").get_data(as_text=True)
    assert "somewhere within ±2.9 km of this point" in page
    assert "<td>±2.9 km</td>" in page


def test_the_map_gets_the_cell_not_a_point():
    south, west, north, east = precision.cell(LAT, LON, 13)
    assert cell_of({"lat": LAT, "lon": LON, "fix_precision_bits": 13}) == [[south, west], [north, east]]
    assert north - south == pytest.approx(0.0524288)
    assert cell_of({"lat": LAT, "lon": LON, "fix_precision_bits": None}) is None
    assert cell_of({"lat": LAT, "lon": LON, "fix_precision_bits": 32}) is None


def test_exports_carry_how_far_the_wearer_may_be_from_the_point(imprecise):
    c = imprecise.test_client()
    login(c, "coordinator")
    rows = list(csv.DictReader(io.StringIO(c.get("/exports/positions.csv?incident=1").get_data(as_text=True))))
    assert [r["uncertainty_m"] for r in rows] == ["2918"]
    geo = json.loads(c.get("/exports/positions.geojson?incident=1").get_data(as_text=True))
    assert geo["features"][0]["properties"]["uncertainty_m"] == 2918
    assert "within 2918 m of this point" in c.get("/exports/positions.kml?incident=1").get_data(as_text=True)


@pytest.mark.parametrize("bits, text", [(32, ""), (None, ""), (24, "±2 m"), (16, "±370 m"), (13, "±2.9 km")])
def test_precision_in_words(bits, text):
    assert precision.describe(bits) == text
