"""Offline maps: MBTiles and PMTiles import and tiles, Leaflet from Debian, and the grid when no
imported map covers the position."""

from __future__ import annotations

import json
import os
import re
import time
import xml.dom.minidom

import pytest
from pmtiles.tile import Compression, TileType

from station import maps

from .test_console_security import app, login  # noqa: F401  (fixture)
from .tilefiles import make_mbtiles, make_pmtiles, png, pyramid

TILES = pyramid(2)


def _scribble(data: bytes, at: int) -> bytes:
    """The same file with 8 bytes overwritten (here: the start of its gzip'd root directory)."""
    return data[:at] + b"\xde\xad\xbe\xef" * 2 + data[at + 8:]


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
    ("notes.txt", b"x", "is an .mbtiles or .pmtiles file"),
    ("broken.mbtiles", b"not sqlite at all" * 50, "is not an MBTiles file"),
    ("world.pmtiles", b"not a pmtiles file at all" * 10, "is not a PMTiles file"),
    ("old.pmtiles", b"PM\x02\x00" + bytes(600), "is not a PMTiles file"),
    ("v2.pmtiles", b"PMTiles\x02" + bytes(200), "old PMTiles file"),
    ("empty.pmtiles", b"", "is empty"),
    ("short.pmtiles", b"PMTiles\x03" + bytes(20), "damaged"),
])
def test_import_refuses_what_it_cannot_read(tmp_path, name, content, message):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(maps.MapError, match=message):
        maps.import_file(f, tmp_path / "s.db")
    assert maps.available(tmp_path / "s.db") == []


@pytest.mark.parametrize("make, message", [
    (lambda p: make_mbtiles(p.with_suffix(".mbtiles"), TILES, fmt="pbf"), "holds pbf tiles"),
    (lambda p: make_mbtiles(p.with_suffix(".mbtiles"), {}), "holds no tiles"),
    (lambda p: make_pmtiles(p, TILES, tile_type=TileType.MVT), "holds mvt tiles"),
    (lambda p: make_pmtiles(p, TILES, compression=Compression.BROTLI), "compresses its tiles with BROTLI"),
    (lambda p: p.write_bytes(make_pmtiles(p, TILES).read_bytes()[:140]), "cut short"),
    (lambda p: p.write_bytes(_scribble(make_pmtiles(p, TILES).read_bytes(), 127)), "damaged PMTiles file"),
])
def test_import_refuses_maps_the_console_could_not_draw(tmp_path, make, message):
    f = tmp_path / "town.pmtiles"
    made = make(f)
    with pytest.raises(maps.MapError, match=message):
        maps.import_file(made if hasattr(made, "suffix") else f, tmp_path / "s.db")


def test_import_refuses_names_that_leave_the_maps_folder(tmp_path):
    f = make_mbtiles(tmp_path / "town.mbtiles", TILES)
    for bad in ("../evil", "a/b", ".hidden", ""):
        with pytest.raises(maps.MapError):
            maps.import_file(f, tmp_path / "s.db", bad or "../")
    assert not (tmp_path / "evil.mbtiles").exists()


@pytest.mark.parametrize("make", [
    lambda p: make_mbtiles(p / "town.mbtiles", TILES),
    lambda p: make_pmtiles(p / "town.pmtiles", TILES),
    lambda p: make_pmtiles(p / "town.pmtiles", TILES, compression=Compression.GZIP),
], ids=["mbtiles", "pmtiles", "pmtiles-gzip"])
def test_tiles_are_served_by_xyz_and_only_from_imported_maps(app, make):   # noqa: F811
    db_path = app.station_config.database_path
    maps.import_file(make(db_path.parent), db_path)
    c = app.test_client()
    login(c, "viewer")
    for (z, x, y), data in TILES.items():   # every tile distinct: a flipped row would not match
        r = c.get(f"/maps/tiles/town/{z}/{x}/{y}")
        assert r.status_code == 200 and r.data == data and r.mimetype == "image/png", (z, x, y)
    for url in ("/maps/tiles/town/3/0/0", "/maps/tiles/town/1/2/0", "/maps/tiles/town/30/0/0",
                "/maps/tiles/..%2Fs/1/0/0", "/maps/tiles/s/1/0/0"):
        assert c.get(url).status_code == 404, url


def test_a_name_is_one_map_whichever_format_it_was_imported_in(tmp_path):
    db = tmp_path / "s.db"
    maps.import_file(make_mbtiles(tmp_path / "town.mbtiles", TILES), db)
    maps.import_file(make_pmtiles(tmp_path / "t.pmtiles", {(0, 0, 0): png((1, 2, 3))}), db, name="town")
    assert maps.available(db) == ["town"] and [p.name for p in maps.folder(db).iterdir()] == ["town.mbtiles"]
    assert maps.tile(db, "town", 0, 0, 0)[0] == png((1, 2, 3)) and maps.tile(db, "town", 1, 0, 0) is None


def test_pmtiles_become_mbtiles_that_keep_shared_tiles_once_and_their_format(tmp_path):
    import sqlite3
    sea, land = png((0, 0, 200)), png((0, 200, 0))
    tiles = {(z, x, y): (land if (x, y) == (0, 0) else sea) for z in range(4) for x in range(1 << z)
             for y in range(1 << z)}
    db = tmp_path / "s.db"
    dest = maps.import_file(make_pmtiles(tmp_path / "w.pmtiles", tiles, tile_type=TileType.JPEG,
                                         compression=Compression.GZIP, bounds=(-20, 10, -10, 20)), db)
    with sqlite3.connect(dest) as c:
        assert c.execute("SELECT COUNT(*) FROM map").fetchone()[0] == 85
        assert c.execute("SELECT COUNT(*) FROM images").fetchone()[0] < 85 // 4      # runs of sea stored once
    for (z, x, y), data in tiles.items():
        assert maps.tile(db, "w", z, x, y) == (data, "image/jpeg"), (z, x, y)
    [(name, info)] = maps.describe(db)
    assert (name, info.format, info.minzoom, info.maxzoom, info.bounds) == ("w", "jpg", 0, 3, (-20, 10, -10, 20))


def test_a_failed_import_leaves_the_old_map_and_no_partial_file(tmp_path):
    db = tmp_path / "s.db"
    maps.import_file(make_mbtiles(tmp_path / "town.mbtiles", TILES), db)
    broken = tmp_path / "town.pmtiles"
    broken.write_bytes(make_pmtiles(tmp_path / "x.pmtiles", pyramid(3)).read_bytes()[:-2000])
    with pytest.raises(maps.MapError, match="cut short"):
        maps.import_file(broken, db)
    assert [p.name for p in maps.folder(db).iterdir()] == ["town.mbtiles"]
    assert maps.tile(db, "town", 2, 3, 1)[0] == TILES[(2, 3, 1)]


def test_a_map_damaged_after_import_is_left_out_not_fatal(tmp_path):
    db = tmp_path / "s.db"
    maps.import_file(make_pmtiles(tmp_path / "a.pmtiles", TILES), db)
    maps.import_file(make_mbtiles(tmp_path / "b.mbtiles", TILES), db)
    (maps.folder(db) / "a.mbtiles").write_bytes(b"SQLite format 3\x00" + bytes(50))
    assert [name for name, _ in maps.describe(db)] == ["b"]
    assert maps.tile(db, "a", 0, 0, 0) is None and maps.tile(db, "b", 0, 0, 0) is not None


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
    assert "No map installed" in page and 'id="map"' not in page and "relative to the station" in page
    db_path = app.station_config.database_path
    # A country map (to zoom 1), a town map (to zoom 2) around the track, one elsewhere.
    maps.import_file(make_pmtiles(db_path.parent / "country.pmtiles", pyramid(1)), db_path)
    maps.import_file(make_mbtiles(db_path.parent / "town.mbtiles", TILES, bounds="-17.5,14.6,-17.3,14.8"), db_path)
    maps.import_file(make_mbtiles(db_path.parent / "away.mbtiles", TILES, bounds="2.2,48.8,2.4,48.9"), db_path)
    page = c.get("/alerts/1").get_data(as_text=True)
    assert 'id="map"' in page and "/vendor/leaflet/leaflet.js" in page
    layers = json.loads(re.search(r'data-layers="([^"]*)"', page).group(1).replace("&#34;", '"'))
    assert layers == [
        {"url": "/maps/tiles/country/{z}/{x}/{y}", "minNativeZoom": 0, "maxNativeZoom": 1,
         "bounds": [[-85.0, -180.0], [85.0, 180.0]]},
        {"url": "/maps/tiles/town/{z}/{x}/{y}", "minNativeZoom": 0, "maxNativeZoom": 2,
         "bounds": [[14.6, -17.5], [14.8, -17.3]]}]
    assert " km, " in page      # distance and bearing stay on the page under the map


def test_the_grid_is_drawn_when_no_imported_map_covers_the_position(app):   # noqa: F811
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    w.call(lambda db: db.execute("INSERT INTO positions (node_num, source, received_at, lat, lon) "
                                 "VALUES (1, 'position_app', ?, 14.70, -17.44)", (time.time(),)))
    w.stop()
    db_path = app.station_config.database_path
    maps.import_file(make_mbtiles(db_path.parent / "away.mbtiles", TILES, bounds="2.2,48.8,2.4,48.9"), db_path)
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/alerts/1").get_data(as_text=True)
    assert 'id="map"' not in page and 'class="grid"' in page and "do not cover this position" in page
    # No station fix: the grid is centred on her first fix, and every note under it says so.
    assert "relative to the first fix" in page and "relative to the station" not in page


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


def _overview_seed(app):   # noqa: F811
    from station.storage.writer import Writer
    w = Writer(app.station_config.database_path).start()
    now = time.time()

    def seed(db):
        db.execute("UPDATE incidents SET lat=14.70, lon=-17.44, fix_at=? WHERE id=1", (now,))
        db.execute("UPDATE incidents SET lat=14.72, lon=-17.46, fix_at=?, duress=1 WHERE id=2", (now,))
        db.execute("UPDATE incidents SET lat=14.80, lon=-17.50, state='resolved' WHERE id=3", ())
        db.execute("INSERT INTO bracelets (node_num, label, public_key, pinned_at, added_at) "
                   "VALUES (4, 'Fatou', 'k', ?, ?)", (now, now))
        db.execute("UPDATE nodes SET lat=14.71, lon=-17.45, fix_at=? WHERE num=4", (now,))
        db.execute("INSERT INTO positions (node_num, source, received_at, lat, lon) VALUES (NULL, 'station_gps', ?, "
                   "14.69, -17.44)", (now,))
    w.call(seed)
    w.stop()


def test_a_coordinator_sees_every_open_alert_and_bracelet_on_one_map_without_internet(app):   # noqa: F811
    """Where to send someone: open alerts (the duress marked), each bracelet's last position, on
    the grid around the station when no office map is installed; resolved alerts are not there."""
    _overview_seed(app)
    c = app.test_client()
    login(c, "viewer")
    page = c.get("/map").get_data(as_text=True)
    grid = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="grid".*?</svg>', page, re.S).group(0)
    xml.dom.minidom.parseString(grid)                   # hostile node names escaped: still well-formed
    assert grid.count('fill="#b00020"') == 1 and grid.count('fill="#5a0010"') == 1     # an alert, a duress
    assert grid.count('fill="#1a5fb4"') == 1 and "Fatou: " in grid                      # her bracelet
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="/alerts/1"' in page and 'href="/alerts/2"' in page and 'href="/alerts/3"' not in page
    assert "relative to the station" in page and "No map installed" in page


def test_the_overview_uses_the_office_map_that_covers_its_points(app):   # noqa: F811
    _overview_seed(app)
    db_path = app.station_config.database_path
    maps.import_file(make_mbtiles(db_path.parent / "away.mbtiles", TILES, bounds="2.2,48.8,2.4,48.9"), db_path)
    c = app.test_client()
    login(c, "viewer")
    assert "do not cover these positions" in c.get("/map").get_data(as_text=True)
    maps.import_file(make_mbtiles(db_path.parent / "town.mbtiles", TILES, bounds="-17.5,14.6,-17.3,14.8"), db_path)
    page = c.get("/map").get_data(as_text=True)
    points = json.loads(re.search(r'data-points="([^"]*)"', page).group(1).replace("&#34;", '"'))
    assert sorted((p["kind"], p["href"]) for p in points) == [
        ("alert", "/alerts/1"), ("bracelet", "/wearers/4"), ("duress", "/alerts/2")]
    layers = json.loads(re.search(r'data-layers="([^"]*)"', page).group(1).replace("&#34;", '"'))
    assert [la["url"] for la in layers] == ["/maps/tiles/town/{z}/{x}/{y}"]
