"""The relay's commands as operators use them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from station.cli import cli
from station.relay.destinations.webhook import signature

from .conftest import secret_files


def config(tmp_path, destinations: str = "") -> str:
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n[gpio]\nenabled = false\n' + destinations)
    return str(cfg)


def run(cfg, *args):
    return CliRunner().invoke(cli, ["--config", cfg, *args], catch_exceptions=False)


def test_bracelets_set_records_consent_and_policy(tmp_path):
    cfg = config(tmp_path)
    assert run(cfg, "bracelets", "add", "!b5a1e001", "--label", "Amina", "--public-key", "A" * 43 + "=").exit_code == 0
    out = run(cfg, "bracelets", "set", "!b5a1e001", "--publish", "verified", "--name", "pseudonym",
              "--pseudonym", "Defender A", "--real-name", "Amina D.", "--precision", "city", "--map-link",
              "--languages", "en,fr", "--approvals", "2", "--publish-after", "15")
    assert out.exit_code == 0 and "real_name = (set)" in out.output and "Amina D." not in out.output
    import sqlite3
    row = sqlite3.connect(tmp_path / "s.db").execute(
        "SELECT publish, name_mode, pseudonym, precision, map_link, languages, approvals, publish_after_min "
        "FROM bracelets").fetchone()
    assert row == ("verified", "pseudonym", "Defender A", "city", 1, '["en", "fr"]', 2, 15.0)
    assert run(cfg, "bracelets", "set", "!b5a1e001", "--no-publish-after").exit_code == 0
    assert run(cfg, "bracelets", "set", "!b5a1e001").exit_code == 2            # nothing to set
    bad = run(cfg, "bracelets", "set", "!b5a1e001", "--languages", "english!")
    assert bad.exit_code == 1 and "languages are codes" in bad.output
    missing = run(cfg, "bracelets", "set", "!b5a1e009", "--publish", "never")
    assert missing.exit_code == 1 and "is not registered" in missing.output


def test_approve_withhold_and_outbox_actions(relay, tmp_path):
    h = relay(kinds=("x",)).start()
    h.bracelet(publish="verified", approvals=1)
    iid = h.incident()
    h.worker.wake()
    h.wait_states({("x", "alert"): "held"})
    cfg = config(tmp_path)
    cfg_path = tmp_path / "station.toml"
    cfg_path.write_text(f'[storage]\ndatabase = "{h.writer.path}"\n')
    listed = json.loads(run(cfg, "outbox", "list", "--json").output)
    assert [(r["destination"], r["state"]) for r in listed] == [("x", "held")]
    assert "waiting for 1 coordinator approval" in run(cfg, "outbox", "list").output
    assert run(cfg, "alerts", "approve", str(iid), "--by", "maria").exit_code == 0
    h.worker.wake()
    h.wait_states({("x", "alert"): "sent"})
    again = run(cfg, "outbox", "retry", str(listed[0]["id"]))
    assert again.exit_code == 1 and "only failed, uncertain or held rows" in again.output
    # An uncertain post: listed first and loudly, settled by a person.
    h.x.fail_next(stall_s=2.0)
    second = h.incident(lat=1.0, lon=1.0)
    run(cfg, "alerts", "approve", str(second))
    h.worker.wake()
    from tests.conftest import wait_until
    wait_until(lambda: any(r["state"] == "uncertain" for r in h.rows()), 10, what="uncertain row")
    assert "MAY HAVE BEEN POSTED" in run(cfg, "outbox", "list").output
    uncertain = next(r for r in h.rows() if r["state"] == "uncertain")
    assert run(cfg, "outbox", "confirm", str(uncertain["id"]), "--not-posted").exit_code == 0
    assert run(cfg, "outbox", "cancel", str(uncertain["id"])).exit_code == 0
    third = h.incident(lat=2.0, lon=2.0)
    assert run(cfg, "alerts", "withhold", str(third)).exit_code == 0
    h.quiet()
    assert all(f"#{third}" not in p.text for p in h.x.posts)


def test_drill_command_passes_through_the_drill_destination(tmp_path):
    cfg = config(tmp_path, f'[[destinations]]\nname = "drills"\nkind = "drill"\naudience = "private"\n'
                           f'path = "{tmp_path / "drills.jsonl"}"\n')
    out = run(cfg, "drill", "--timeout", "20")
    assert out.exit_code == 0 and "PASS" in out.output
    assert "[DRILL" in (tmp_path / "drills.jsonl").read_text()


def test_drill_without_a_drill_destination_is_refused(tmp_path):
    out = run(config(tmp_path), "drill")
    assert out.exit_code == 1 and "no drill destination" in out.output


def test_a_credential_readable_by_others_makes_that_destination_unusable_and_says_why(tmp_path):
    files = secret_files(tmp_path)
    (tmp_path / "access_token_file").chmod(0o644)
    cfg = config(tmp_path, f'[[destinations]]\nname = "m"\nkind = "mastodon"\napi_base_url = "https://m.invalid"\n'
                           f'access_token_file = "{files["access_token_file"]}"\n')
    from station import config as configmod
    [d] = configmod.load(cfg).destinations(read_secrets=True)
    assert "readable by others" in d.problem and d.secrets == {}


def test_webhook_posts_are_signed_and_verifiable(relay):
    h = relay(kinds=("webhook",)).start()
    h.bracelet(publish="at-once")
    h.incident()
    h.worker.wake()
    h.wait_states({("webhook", "alert"): "sent"})
    assert len(h.webhook.posts) == 1 and h.webhook.bad_signatures == 0
    assert signature("k", "1", b"{}") == "sha256=" + __import__("hmac").new(
        b"k", b"1.{}", "sha256").hexdigest()


def test_secrets_never_appear_in_repr_or_logs(tmp_path, caplog):
    files = secret_files(tmp_path)
    from station.relay import settings
    d = settings.destination({"name": "m", "kind": "mastodon", "api_base_url": "https://m.invalid",
                              "access_token_file": files["access_token_file"]}, 0, tmp_path)
    assert "value-of" not in repr(d) and "value-of" not in str(d.secrets["access_token_file"])

