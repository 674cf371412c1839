"""The `station` command as operators use it: output, JSON, errors that say what to do."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from station.cli import cli
from station.radio.virtual import scenarios
from station.radio.virtual.bracelets import cast

P = cast()
# Read from the bracelet over USB in real life; here the virtual bracelet's own key.
KEY = __import__("base64").b64encode(P["amina"].public_key).decode()


@pytest.fixture
def run_cli(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "station.db"}"\n[gpio]\nenabled = false\n')

    def invoke(*args, input=None):
        return CliRunner().invoke(cli, ["--config", str(cfg), *args], input=input, catch_exceptions=False)
    invoke.db_path = tmp_path / "station.db"
    invoke.config = cfg
    return invoke


@pytest.fixture
def stored(harness, tmp_path):
    """A database with real alerts, written by a real station from the virtual radio."""
    h = harness("triggers", "pty")
    h.settle()
    h.stop()
    return h


def cli_on(h):
    cfg = h.cfg.database_path.parent / "cli.toml"
    cfg.write_text(f'[storage]\ndatabase = "{h.cfg.database_path}"\n')
    return lambda *a: CliRunner().invoke(cli, ["--config", str(cfg), *a], catch_exceptions=False)


def test_help_names_every_command():
    out = CliRunner().invoke(cli, ["--help"]).output
    for cmd in ("run", "demo", "status", "alerts", "nodes", "bracelets", "radio"):
        assert f"  {cmd} " in out


def test_simulate_help_lists_every_scenario():
    out = CliRunner().invoke(cli, ["radio", "simulate", "--help"], terminal_width=400).output
    assert all(name in out for name in scenarios.SCENARIOS)


def test_alerts_list_show_ack_and_resolve(stored):
    station = cli_on(stored)
    rows = json.loads(station("alerts", "list", "--json").output)
    assert {r["source"] for r in rows} == {"alert_app", "detection_sensor", "bell", "keyword"}
    visitor = next(r for r in rows if r["node_num"] == P["visitor"].num)
    assert visitor["trust"] == "unregistered"
    text = station("alerts", "list").output
    assert "UNREGISTERED" in text and "Amina D." in text
    amina = next(r for r in rows if r["node_num"] == P["amina"].num)["id"]
    assert station("alerts", "ack", str(amina), "--by", "maria").exit_code == 0
    again = station("alerts", "ack", str(amina))
    assert again.exit_code == 1 and "is acknowledged, not open" in again.output
    shown = json.loads(station("alerts", "show", str(amina), "--json").output)
    assert shown["acknowledged_by"] == "cli:maria"
    assert [e["action"] for e in shown["events"]] == ["alert opened", "acknowledged"]
    assert station("alerts", "resolve", str(amina), "--as", "false_alarm").exit_code == 0
    assert station("alerts", "show", "999").exit_code == 1


def test_status_reports_radio_counts_and_database_check(stored):
    st = json.loads(cli_on(stored)("status", "--json").output)
    assert st["database_check_now"] == "ok"
    assert st["radio"]["status"] == "stopped" and st["daemon_running"] is False
    assert st["counts"]["alerts_open"] == 4
    text = cli_on(stored)("status").output
    assert "NOT RUNNING" in text and "quick_check ok" in text


def test_nodes_escape_hostile_names_on_the_terminal(harness):
    h = harness("idle", "pty")
    evil = P["visitor"]
    evil.long_name = "\x1b[2J\x1b[31mFAKE\u202e<b>x</b>"
    h.sim.radio.emit_packet(evil.nodeinfo())
    from .conftest import wait_until
    wait_until(lambda: h.count("SELECT COUNT(*) FROM nodes WHERE long_name LIKE '%FAKE%'") == 1, 5, what="node")
    out = cli_on(h)("nodes").output
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\x1b[2J" in out and "\\u202e" in out
    as_json = cli_on(h)("nodes", "--json").output
    assert "\x1b" not in as_json and json.loads(as_json)[0]["long_name"] == evil.long_name


def test_bracelets_add_list_remove(run_cli):
    out = run_cli("bracelets", "add", "!b5a1e001", "--label", "Amina", "--public-key", KEY, "--pins-stdin", input="246813\n135792\n")
    assert out.exit_code == 0 and "key pinned" in out.output
    listed = json.loads(run_cli("bracelets", "list", "--json").output)
    assert listed[0]["node_id"] == "!b5a1e001" and listed[0]["has_duress_pin"] is True
    dup = run_cli("bracelets", "add", "0xb5a1e001", "--label", "Again", "--public-key", KEY)
    assert dup.exit_code == 1 and "already registered" in dup.output
    assert run_cli("bracelets", "remove", "3047284737").exit_code == 0
    assert "no bracelets registered" in run_cli("bracelets", "list").output


@pytest.mark.parametrize("args, pins, message", [
    (["bracelets", "add", "amina", "--label", "A", "--public-key", KEY], None, "is not a node"),
    (["bracelets", "add", "!b5a1e001", "--label", "A"], None, "Missing option '--public-key'"),
    (["bracelets", "add", "!b5a1e001", "--label", "A", "--public-key", KEY, "--pins-stdin"], "12\n\n", "a PIN is 6 to 8 digits"),
    # Four digits fall a seizer in minutes: below [alerts] min_pin_digits (6 by default).
    (["bracelets", "add", "!b5a1e001", "--label", "A", "--public-key", KEY, "--pins-stdin"], "2468\n\n", "a PIN is 6 to 8 digits"),
    (["bracelets", "add", "!b5a1e001", "--label", "A", "--public-key", KEY, "--pins-stdin"], "123456\n123456\n", "must differ"),
    (["bracelets", "add", "!b5a1e001", "--label", "A", "--public-key", "short"], None, "a public key is 32 bytes"),
    (["bracelets", "pins", "!b5a1e009", "--pins-stdin"], "123456\n654321\n", "is not registered"),
])
def test_bracelet_input_errors_are_explained(run_cli, args, pins, message):
    out = run_cli(*args, input=pins)
    assert out.exit_code != 0 and message in out.output


def test_a_pin_never_appears_as_an_option_of_any_command():
    """A PIN on the command line stays in the shell's history and in `ps` for every user."""
    import click

    def options(cmd, path=()):
        for p in cmd.params:
            yield path, p
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from options(sub, (*path, name))
    offending = [(" ".join(path), o) for path, p in options(cli) for o in getattr(p, "opts", [])
                 if "pin" in o.lower() and o not in ("--pins", "--pins-stdin") and isinstance(p, click.Option)]
    assert offending == []


def test_min_pin_digits_from_the_config_is_what_a_new_pin_needs(run_cli):
    run_cli.config.write_text(run_cli.config.read_text() + "[alerts]\nmin_pin_digits = 8\n")
    out = run_cli("bracelets", "add", "!b5a1e001", "--label", "A", "--public-key", KEY, "--pins-stdin", input="246813\n\n")
    assert out.exit_code == 1 and "a PIN is 8 to 8 digits" in out.output
    ok = run_cli("bracelets", "add", "!b5a1e001", "--label", "A", "--public-key", KEY, "--pins-stdin", input="24681357\n\n")
    assert ok.exit_code == 0


def test_pins_can_be_set_again_and_the_event_log_says_who_without_the_pin(run_cli):
    assert run_cli("bracelets", "add", "!b5a1e001", "--label", "A", "--public-key", KEY).exit_code == 0
    out = run_cli("bracelets", "pins", "!b5a1e001", "--pins-stdin", input="246813\n135792\n")
    assert out.exit_code == 0 and "cancel PIN set, duress PIN set" in out.output
    with sqlite3.connect(run_cli.db_path) as c:
        detail = c.execute("SELECT actor, detail FROM events WHERE action='PINs set'").fetchone()
        hashes = c.execute("SELECT cancel_pin_hash || duress_pin_hash FROM bracelets").fetchone()[0]
    assert detail[0].startswith("cli:") and "246813" not in detail[1] and "246813" not in hashes


def test_invalid_config_stops_with_the_key_named(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[radio]\nport = "COM3"\n')
    out = CliRunner().invoke(cli, ["--config", str(cfg), "status"])
    assert out.exit_code == 1 and "configuration: [radio] port: expected" in out.output


def test_missing_config_file_is_reported(tmp_path):
    out = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.toml"), "status"])
    assert out.exit_code == 1 and "does not exist" in out.output


def test_locked_database_is_reported_clearly(run_cli, monkeypatch):
    from station.storage import db as dbmod
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 200)
    run_cli("bracelets", "list")
    holder = sqlite3.connect(run_cli.db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        out = run_cli("bracelets", "add", "!b5a1e001", "--label", "A", "--public-key", KEY)
        assert out.exit_code == 1 and "locked" in out.output
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_status_shows_the_relay_uncertain_posts_and_budget(run_cli):
    from station.storage import db as dbmod
    from station import runtime
    from station.storage.migrations import migrate
    db = dbmod.connect(run_cli.db_path)
    migrate(db)
    runtime.write_status(run_cli.db_path, {"relay": {"online": False, "budget": {"x": {"used": 0.45, "budget": 10.0}}}})
    db.execute("INSERT INTO outbox (incident_id, destination, kind, seq, priority, state, text, idempotency_key, "
               "created_at, updated_at) VALUES (1, 'x', 'alert', 0, 0, 'uncertain', 't', 'k', 0, 0)")
    out = run_cli("status").output
    assert "internet DOWN" in out and "1 MAY HAVE BEEN POSTED" in out and "x budget 0.45 of 10.00" in out


def test_status_says_whether_the_hub_and_the_uplink_are_reached_and_what_they_dropped(run_cli):
    """The technician at a terminal: is the station on the NGO's network, and does it hear the
    office's gateway (and what garbage came through it)?"""
    from station import runtime
    from station.storage import db as dbmod
    from station.storage.migrations import migrate
    migrate(dbmod.connect(run_cli.db_path))
    runtime.write_status(run_cli.db_path, {
        "network": {"enabled": True, "connected": False, "error": "disconnected: TLS handshake failed", "queue": 3,
                    "unconfirmed": 5},
        "uplink": {"enabled": True, "connected": True, "channel": "Natalia", "gateways": ["!0ff1ce01"], "taken": 12,
                   "dropped": {"not a ServiceEnvelope": 2, "from a gateway not in [uplink] gateways": 1}}})
    out = run_cli("status").output
    assert "hub       NOT CONNECTED: disconnected: TLS handshake failed; 3 events waiting, 5 not yet confirmed" in out
    assert "uplink    hearing Natalia through !0ff1ce01; 12 packets taken, 3 envelopes dropped" in out
    assert "2 not a ServiceEnvelope" in out


def test_demo_starts_the_console_with_a_one_time_account(tmp_path):
    import re
    import signal
    import subprocess
    import sys

    import requests

    from .conftest import free_port, wait_until
    port = free_port()
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[console]\nport = {port}\n')
    p = subprocess.Popen([sys.executable, "-m", "station", "--config", str(cfg), "demo", "--scenario", "sos",
                          "--speed", "10", "--database", str(tmp_path / "demo.db")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        p.stdout.readline()
        line = p.stdout.readline()
        m = re.search(r"console: (http://\S+) — log in as demo / (\S+)", line)
        assert m, line
        s = requests.Session()
        page = s.get(m.group(1) + "login", timeout=5).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        s.post(m.group(1) + "login", data={"name": "demo", "password": m.group(2), "csrf_token": token}, timeout=5)
        wait_until(lambda: s.get(m.group(1) + "api/alerts", timeout=5).json(), 20, 0.3, what="the SOS in the API")
        assert s.get(m.group(1) + "api/alerts", timeout=5).json()[0]["drill"] == 1
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(15)


def test_maps_import_and_list_pmtiles_and_explain_a_refusal(run_cli, tmp_path):
    from tests.web.tilefiles import make_pmtiles, pyramid
    assert "no maps imported" in run_cli("maps", "list").output
    r = run_cli("maps", "import", str(make_pmtiles(tmp_path / "dakar.pmtiles", pyramid(1))))
    assert r.exit_code == 0 and "map dakar imported" in r.output and "converting: 5 of 5 tiles" in r.output
    assert run_cli("maps", "list").output.split() == ["dakar"]
    bad = tmp_path / "vector.pmtiles"
    bad.write_bytes(b"PMTiles\x02" + bytes(200))
    r = run_cli("maps", "import", str(bad))
    assert r.exit_code == 1 and "pmtiles convert" in r.output and run_cli("maps", "list").output.split() == ["dakar"]


def test_a_console_on_a_busy_port_says_so_in_one_line(tmp_path):
    """An office administrator who starts a second console sees why it did not start."""
    import socket
    import subprocess
    import sys
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        cfg = tmp_path / "station.toml"
        cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n')
        out = subprocess.run([sys.executable, "-m", "station", "--config", str(cfg), "console", "--host", "127.0.0.1",
                              "--port", str(port)], capture_output=True, text=True, timeout=60)
    finally:
        busy.close()
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "is another console running?" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_first_demo_in_a_fresh_folder_makes_its_data_folder_and_runs(tmp_path):
    """`station demo` where nothing was ever run: its default database folder does not exist yet."""
    import subprocess
    import sys

    from .conftest import free_port
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[console]\nport = {free_port()}\n')
    run = subprocess.run([sys.executable, "-m", "station", "--config", str(cfg), "demo", "--seconds", "3",
                          "--database", str(tmp_path / "fresh" / "station-data" / "demo.db")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-1500:]
    assert (tmp_path / "fresh" / "station-data" / "demo.db").exists()
