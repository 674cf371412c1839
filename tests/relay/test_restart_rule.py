"""What a relay restart does with posts caught mid-request by a crash or power cut: a post that may
have gone out is never sent again blindly (X has no idempotency key), and is re-sent only where
the platform itself drops a repeat of the same key, within the window it keeps keys."""

from __future__ import annotations

from station.relay import outbox as ob
from station.storage.writer import Writer

NOW = 1_790_000_000.0
WINDOWS = {"mastodon": 3000.0, "drill": float("inf")}     # the clients' idempotency_window_s


def test_a_post_caught_mid_request_is_re_sent_only_where_the_platform_drops_repeats(tmp_path):
    w = Writer(tmp_path / "s.db").start()
    try:
        rows = [("x", "sending", NOW - 10),             # X would post it twice
                ("mastodon", "sending", NOW - 10),      # Mastodon still remembers the key
                ("mastodon", "sending", NOW - 3600),    # ...but not after 50 minutes
                ("webhook", "sending", NOW - 10),       # a key we send, that nobody promised to honour
                ("drill", "sending", NOW - 86400),      # our own file: a repeated key is always found
                ("x", "ready", None), ("x", "sent", NOW - 10)]
        for i, (dest, state, first) in enumerate(rows):
            w.call(lambda db, i=i, dest=dest, state=state, first=first: db.execute(
                "INSERT INTO outbox (incident_id, destination, kind, seq, priority, state, text, idempotency_key, "
                "created_at, updated_at, first_attempt_at) VALUES (1, ?, 'alert', ?, 0, ?, 't', ?, 0, 0, ?)",
                (dest, i, state, f"key-{i}", first)))
        changed = w.call(lambda db: ob.recover_after_restart(db, None, NOW, WINDOWS))
        after = [tuple(r) for r in w.db.execute("SELECT state, idempotency_key FROM outbox ORDER BY id")]
        reasons = [r[0] for r in w.db.execute("SELECT reason FROM outbox ORDER BY id")]
    finally:
        w.stop()
    assert changed == 5
    assert [s for s, _ in after] == ["uncertain", "ready", "uncertain", "uncertain", "ready", "ready", "sent"]
    assert [k for _, k in after] == [f"key-{i}" for i in range(7)]          # a re-send keeps its key
    assert "may have been posted" in reasons[0] and "same idempotency key" in reasons[1]
