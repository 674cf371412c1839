"""Live updates: a new alert reaches an open stream, many open pages do not freeze the console;
and accounts from the command line."""

from __future__ import annotations

import json
import re
import threading
import time

from click.testing import CliRunner

from station.cli import cli
from station.storage.writer import Writer

from tests.conftest import wait_until

from .consoles import PASSWORD, open_alert, seed, station_console
from .test_console_security import app, login  # noqa: F401  (fixture)


def test_a_new_alert_reaches_an_open_event_stream(app):   # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    response = c.get("/api/stream", buffered=False)
    chunks = response.response

    def raise_alert():
        wait_until(lambda: app.extensions["event_hub"].streams == 1, 5, what="the stream open")
        w = Writer(app.station_config.database_path).start()
        w.call(lambda db: db.execute("INSERT INTO events (incident_id, at, actor, action) VALUES (1, ?, 'wearer', "
                                     "'alert opened')", (time.time(),)))
        w.stop()
    threading.Thread(target=raise_alert).start()
    got = ""
    deadline = time.monotonic() + 5
    for chunk in chunks:
        got += chunk.decode() if isinstance(chunk, bytes) else chunk
        if "event: incident" in got or time.monotonic() > deadline:
            break
    response.close()
    data = json.loads(re.search(r"data: (.*)", got.split("event: incident", 1)[1]).group(1))
    assert data == {"incident": 1, "action": "alert opened", "state": "open"}


def test_users_are_created_from_the_command_line_with_the_same_rules(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n')
    run = lambda *a, input=None: CliRunner().invoke(cli, ["--config", str(cfg), *a], input=input)  # noqa: E731
    assert run("users", "add", "maria", "--role", "coordinator", "--password-stdin",
               input="a long enough secret\n").exit_code == 0
    short = run("users", "add", "omar", "--role", "viewer", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    twice = run("users", "add", "maria", "--role", "admin", "--password-stdin", input="another long secret\n")
    assert twice.exit_code == 1 and "exists already" in twice.output
    prompted = run("users", "add", "ana", "--role", "admin", input="first secret 123\nfirst secret 123\n")
    assert prompted.exit_code == 0
    listed = run("users", "list", "--json").output
    assert json.loads(listed)[0]["name"] == "ana" and "scrypt" not in listed


def test_more_open_pages_than_threads_never_freeze_the_console(tmp_path):
    """A busy office: more pages open than the console has threads for streams. Streams past the
    cap are told to come back (503, and the pages keep up by polling); pages and actions still
    answer, and every stream that is open hears the next alert."""
    import requests
    db = tmp_path / "station.db"
    seed(db, ("INSERT INTO bracelets (node_num, label, added_at) VALUES (?, 'Amina D.', 0)", (0xB5A1E001,)))
    with station_console(db, console="threads = 20") as base:     # 4 streams at most, 16 kept for pages
        s = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"', s.get(base + "/login").text).group(1)
        s.post(base + "/login", data={"name": "maria", "password": PASSWORD, "csrf_token": token})
        opened = [s.get(base + "/api/stream", stream=True, timeout=10) for _ in range(10)]
        try:
            codes = sorted(r.status_code for r in opened)
            assert codes == [200] * 4 + [503] * 6
            for _ in range(20):                     # pages and polls are still served
                assert s.get(base + "/api/state", timeout=10).status_code == 200
            assert s.get(base + "/", timeout=10).status_code == 200
            iid = open_alert(db, 0xB5A1E001)
            for r in (r for r in opened if r.status_code == 200):
                got = ""
                for chunk in r.iter_content(chunk_size=None, decode_unicode=True):
                    got += chunk
                    if "event: incident" in got:
                        break
                assert f'"incident": {iid}' in got
        finally:
            for r in opened:
                r.close()
