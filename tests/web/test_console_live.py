"""Live updates and accounts: a new alert reaches an open stream; accounts only from the command line."""

from __future__ import annotations

import json
import re
import threading
import time

from click.testing import CliRunner

from station.cli import cli
from station.storage.writer import Writer

from .test_console_security import app, login  # noqa: F401  (fixture)


def test_a_new_alert_reaches_an_open_event_stream(app):   # noqa: F811
    c = app.test_client()
    login(c, "viewer")
    response = c.get("/api/stream", buffered=False)
    chunks = response.response

    def raise_alert():
        time.sleep(0.3)
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


def test_users_are_created_from_the_command_line_only(tmp_path):
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
