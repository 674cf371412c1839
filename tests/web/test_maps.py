"""Offline maps: MBTiles import and tiles, Leaflet from Debian, and the grid when there is no map."""

from __future__ import annotations

import os
import sqlite3
import time
import xml.dom.minidom

import pytest

from station import maps

from .test_console_security import app, login  # noqa: F401  (fixture)

PNG = b"\x89PNG\r\n\x1a\n" + b"tile"


def make_mbtiles(path, fmt="png"):
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE metadata (name text, value text)")
        c.execute("CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, tile_data blob)")
        c.execute("INSERT INTO metadata VALUES ('format', ?)", (fmt,))
        c.execute("INSERT INTO tiles VALUES (1, 0, 1, ?)", (PNG,))     # XYZ 1/0/0 is TMS row 1
    return path


@pytest.mark.parametrize("dlat, dlon, metres, bearing", [
    (0.009, 0.0, 1000, 0), (0.0, 0.009, 1000, 90), (-0.009, 0.0, 1000, 180), (0.0, -0.09, 10_000, 270)])
def test_distance_and_bearing(dlat, dlon, metres, bearing):
    d, b = maps.distance_bearing(0.0, 0.0, dlat, dlon)
    assert d == pytest.approx(metres, rel=0.01) and b == pytest.approx(bearing, abs=0.5)


def test_grid_draws_rings_labels_and_the_last_fix():
    svg = maps.grid_svg((14.69, -17.44), "station", [(14.70, -17.44, "<b>Amina</b>"), (14.701, -17.439, "<b>Amina</b>")])
    xml.dom.minidom.parseString(svg)
    assert "&lt;b&gt;Amina&lt;/b&gt;: 1.2 km" in svg and "N ↑" in svg and svg.count("<circle") >= 6


@pytest.mark.parametrize("name, content, message", [
    ("world.pmtiles", b"PMTiles", "not supported yet"),
    ("notes.txt", b"x", "is an .mbtiles file"),
    ("broken.mbtiles", b"not sqlite at all" * 50, "is not an MBTiles file"),
])
def test_import_refuses_what_it_cannot_serve(tmp_path, name, content, message):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(maps.MapError, match=message):
        maps.import_file(f, tmp_path / "s.db")


def test_import_refuses_names_that_leave_the_maps_folder(tmp_path):
    f = make_mbtiles(tmp_path / "town.mbtiles")
    for bad in ("../evil", "a/b", ".hidden", ""):
        with pytest.raises(maps.MapError):
            maps.import_file(f, tmp_path / "s.db", bad or "../")
    assert not (tmp_path / "evil.mbtiles").exists()


def test_tiles_are_served_by_xyz_and_only_from_imported_maps(app):   # noqa: F811
    db_path = app.station_config.database_path
    maps.import_file(make_mbtiles(db_path.parent / "town.mbtiles"), db_path)
    c = app.test_client()
    login(c, "viewer")
    r = c.get("/maps/tiles/town/1/0/0")
    assert r.status_code == 200 and r.data == PNG and r.mimetype == "image/png"
    for url in ("/maps/tiles/town/1/0/1", "/maps/tiles/town/30/0/0", "/maps/tiles/..%2Fs/1/0/0",
                "/maps/tiles/s/1/0/0"):
        assert c.get(url).status_code == 404, url


def test_incident_page_shows_the_grid_without_a_map_and_leaflet_with_one(app):   # noqa: F811
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    now = time.time()

    def track(db):
        db.execute("INSERT INTO positions (node_num, source, received_at, lat, lon) VALUES (NULL, 'station_gps', ?, "
                   "14.69, -17.44)", (now,))
        for i in range(3):
            db.execute("INSERT INTO positions (node_num, source, received_at, lat, lon) VALUES (1, 'position_app', ?, ?, ?)",
                       (now + i, 14.70 + i * 0.001, -17.44))
    w.call(track)
    w.stop()
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/alerts/1").get_data(as_text=True)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="grid"' in page and "station" in page and " km, " in page
    maps.import_file(make_mbtiles(app.station_config.database_path.parent / "town.mbtiles"),
                     app.station_config.database_path)
    page = c.get("/alerts/1").get_data(as_text=True)
    assert 'id="map"' in page and 'data-tiles="/maps/tiles/town/{z}/{x}/{y}"' in page
    assert "/vendor/leaflet/leaflet.js" in page


def test_leaflet_comes_from_debian_and_paths_stay_inside_its_folder(app):   # noqa: F811
    from web.maps import LEAFLET_DIR
    if not os.path.isdir(LEAFLET_DIR):
        if os.environ.get("CI"):
            pytest.fail("libjs-leaflet is missing in CI (.ci/run installs it)")
        pytest.skip("libjs-leaflet not installed")
    c = app.test_client()
    login(c, "viewer")
    assert c.get("/vendor/leaflet/leaflet.js").status_code == 200
    assert c.get("/vendor/leaflet/../../../etc/passwd").status_code == 404
    assert c.get("/vendor/leaflet/%2e%2e/%2e%2e/etc/passwd").status_code == 404
