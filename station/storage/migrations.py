"""Schema migrations, applied in order at start-up; `PRAGMA user_version` records the last one.

A migration is never edited once released: a change of schema is a new function at the end.
"""

from __future__ import annotations

from typing import Callable

import sqlite_utils


def _v1(db: sqlite_utils.Database) -> None:
    db["packets"].create({
        "id": int, "received_at": float, "from_num": int, "to_num": int, "packet_id": int,
        "portnum": int, "port": str, "channel": int, "snr": float, "rssi": int,
        "hop_start": int, "hop_limit": int, "hops": int, "via_mqtt": int, "rx_time": int,
        "raw": bytes, "decode": str, "duplicates": int, "last_seen_at": float,
    }, pk="id", defaults={"duplicates": 0, "decode": "ok"})
    # Packet id 0 means "no id"; such packets cannot be deduplicated and are all kept.
    db.execute("CREATE UNIQUE INDEX packets_sender_id ON packets(from_num, packet_id) WHERE packet_id != 0")
    db["packets"].create_index(["received_at"])

    db["rejects"].create({
        "id": int, "at": float, "source": str, "reason": str, "detail": str, "raw": bytes,
    }, pk="id")
    db["rejects"].create_index(["source", "reason"])

    db["nodes"].create({
        "num": int, "node_id": str, "long_name": str, "short_name": str, "hw_model": str,
        "role": str, "public_key": str, "first_heard": float, "last_heard": float,
        "snr": float, "rssi": int, "hops": int, "battery_level": int, "voltage": float,
        "lat": float, "lon": float, "fix_at": float, "key_mismatch": int,
    }, pk="num", defaults={"key_mismatch": 0})

    db["positions"].create({
        "id": int, "node_num": int, "packet": int, "source": str, "received_at": float,
        "fix_at": float, "lat": float, "lon": float, "alt": float, "sats": int,
        "precision_bits": int, "quality": int,
    }, pk="id")
    db["positions"].create_index(["node_num", "received_at"])

    db["telemetry"].create({
        "id": int, "node_num": int, "packet": int, "received_at": float, "battery_level": int,
        "voltage": float, "channel_util": float, "air_util_tx": float, "uptime_s": int,
    }, pk="id")
    db["telemetry"].create_index(["node_num", "received_at"])

    db["bracelets"].create({
        "node_num": int, "label": str, "public_key": str, "pinned_at": float,
        "cancel_pin_hash": str, "duress_pin_hash": str, "added_at": float,
    }, pk="node_num")

    db["incidents"].create({
        "id": int, "node_num": int, "opened_at": float, "last_press_at": float,
        "press_count": int, "source": str, "state": str, "resolution": str, "trust": str,
        "duress": int, "drill": int, "lat": float, "lon": float, "fix_at": float,
        "fix_source": str, "acknowledged_at": float, "acknowledged_by": str,
        "resolved_at": float, "resolved_by": str, "opening_packet": int, "message": str,
    }, pk="id", defaults={"press_count": 1, "state": "open", "duress": 0, "drill": 0})
    db["incidents"].create_index(["node_num", "state"])
    db["incidents"].create_index(["state", "opened_at"])

    db["events"].create({
        "id": int, "incident_id": int, "at": float, "actor": str, "action": str, "detail": str,
    }, pk="id")
    db["events"].create_index(["incident_id"])
    # The event log is evidence: rows are added, never changed or removed.
    db.execute("""CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
                  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""")
    db.execute("""CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
                  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""")

    db["receipts"].create({
        "id": int, "incident_id": int, "node_num": int, "kind": str, "text": str,
        "state": str, "packet_id": int, "reason": str, "created_at": float, "updated_at": float,
    }, pk="id")
    db["receipts"].create_index(["packet_id"])

    db["station_state"].create({"key": str, "value": str, "updated_at": float}, pk="key")


def _v2(db: sqlite_utils.Database) -> None:
    """The relay: consent per wearer, approvals, the outbox and persisted rate-limit resets."""
    # Nothing is published unless the office records the wearer's consent.
    for col, typ, default in [
        ("publish", str, "never"), ("name_mode", str, "none"), ("pseudonym", str, None),
        ("real_name", str, None), ("precision", str, "none"), ("map_link", int, 0),
        ("languages", str, '["en"]'), ("approvals", int, 1), ("publish_after_min", float, None),
        ("position_updates", int, 0),
    ]:
        db["bracelets"].add_column(col, typ, not_null_default=default) if default is not None \
            else db["bracelets"].add_column(col, typ)
    db["incidents"].add_column("withheld", int, not_null_default=0)
    # The relay's bookkeeping: alert rows planned, follow-ups planned after resolution.
    db["incidents"].add_column("relay_planned", int, not_null_default=0)
    db["incidents"].add_column("relay_followed_up", int, not_null_default=0)
    # The relay sweeps twice a second: it must find its few live incidents without scanning history.
    db.execute("CREATE INDEX incidents_relay_unplanned ON incidents(id) WHERE relay_planned = 0")
    db.execute("CREATE INDEX incidents_relay_live ON incidents(id) WHERE relay_followed_up = 0 AND relay_planned = 1")
    db["approvals"].create({"incident_id": int, "actor": str, "at": float}, pk=("incident_id", "actor"))
    db["outbox"].create({
        "id": int, "incident_id": int, "destination": str, "kind": str, "seq": int, "priority": int,
        "state": str, "reason": str, "text": str, "has_link": int, "cost": float,
        "idempotency_key": str, "reply_to": str, "remote_id": str, "url": str, "attempts": int,
        "next_attempt_at": float, "first_attempt_at": float, "created_at": float, "updated_at": float,
        "sent_at": float,
    }, pk="id", defaults={"attempts": 0, "seq": 0, "has_link": 0, "cost": 0.0})
    db.execute("CREATE UNIQUE INDEX outbox_once ON outbox(incident_id, destination, kind, seq)")
    db["outbox"].create_index(["state", "priority", "created_at"])
    db["outbox"].create_index(["destination", "sent_at"])
    db["destination_limits"].create({"destination": str, "blocked_until": float, "reason": str,
                                     "updated_at": float}, pk="destination")


def _v3(db: sqlite_utils.Database) -> None:
    """The console: accounts with roles, and an audit log of what is not tied to an incident."""
    db["users"].create({
        "name": str, "role": str, "password_hash": str, "created_at": float, "failed_logins": int,
        "locked_until": float, "last_login": float, "disabled": int,
    }, pk="name", defaults={"failed_logins": 0, "disabled": 0})
    db["audit"].create({"id": int, "at": float, "actor": str, "action": str, "detail": str}, pk="id")
    # Status counts must not scan a million packets: duplicates are few, index only them.
    db.execute("CREATE INDEX packets_with_duplicates ON packets(duplicates) WHERE duplicates > 0")
    db.execute("""CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
                  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""")
    db.execute("""CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
                  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""")


def _v4(db: sqlite_utils.Database) -> None:
    """Real firmware: precision carried with each fix, packets a 2.8 radio replays from its cache,
    external power, and receipts that are retried until delivered or given up."""
    db["positions"].add_column("cached", int, not_null_default=0)
    db["telemetry"].add_column("external_power", int, not_null_default=0)
    db["telemetry"].add_column("cached", int, not_null_default=0)
    db["nodes"].add_column("external_power", int, not_null_default=0)
    db["nodes"].add_column("fix_precision_bits", int)
    db["incidents"].add_column("fix_precision_bits", int)
    db["receipts"].add_column("attempts", int, not_null_default=0)
    db["receipts"].add_column("next_attempt_at", float)
    db["receipts"].add_column("sent_at", float)
    db["receipts"].add_column("answered_by", str)
    # The sender looks twice a second for work: receipts queued, and receipts waiting for an answer.
    db.execute("CREATE INDEX receipts_queued ON receipts(id) WHERE state = 'queued'")
    db.execute("CREATE INDEX receipts_waiting ON receipts(sent_at) WHERE state IN ('sent', 'relayed')")


def _v5(db: sqlite_utils.Database) -> None:
    """Technicians' radio jobs: the daemon owns the serial port, so a command that must change the
    radio while it runs leaves the job here and the daemon carries it out and writes the result."""
    db["radio_jobs"].create({
        "id": int, "kind": str, "args": str, "requested_by": str, "requested_at": float,
        "state": str, "started_at": float, "finished_at": float, "result": str,
    }, pk="id", not_null={"kind", "requested_at", "state"}, defaults={"state": "queued"})
    db.execute("CREATE INDEX radio_jobs_queued ON radio_jobs(id) WHERE state = 'queued'")


def _v6(db: sqlite_utils.Database) -> None:
    """Press tests: a technician opens a short window for one bracelet; its press within the window
    is a test (recorded with the path it took), never an alarm and never published."""
    db["press_tests"].create({
        "id": int, "node_num": int, "requested_by": str, "started_at": float, "expires_at": float,
        "state": str, "passed_at": float, "incident_id": int, "hops": int, "snr": float, "rssi": int,
    }, pk="id", not_null={"node_num", "started_at", "expires_at", "state"}, defaults={"state": "waiting"})
    db.execute("CREATE INDEX press_tests_node ON press_tests(node_num, id)")
    db["incidents"].add_column("press_test", int, not_null_default=0)
    # What the bracelet said it is, at provisioning or at its last check over the mesh.
    db["bracelets"].add_column("hw_model", str)
    db["bracelets"].add_column("firmware", str)
    db["bracelets"].add_column("firmware_seen_at", float)


def _v7(db: sqlite_utils.Database) -> None:
    """Retention: what is kept of purged packets (how much each node sent each day), and an index
    so that the daily purge of old rejected frames does not scan them all."""
    db["traffic_days"].create({"day": str, "node_num": int, "packets": int}, pk=("day", "node_num"),
                              defaults={"packets": 0})
    db["rejects"].create_index(["at"])


def _v8(db: sqlite_utils.Database) -> None:
    """Authenticated alerts: what a packet claiming a registered bracelet proved (station/trust.py),
    positions and telemetry that proved nothing kept apart, a duress covered as a cancel for
    everything outside the office, and wrong PINs counted per wearer."""
    db["incidents"].add_column("proof", str)                 # key, channel or none (the opening press)
    db["incidents"].add_column("trust_reason", str)
    # 1: outside the office this incident looks resolved as safe (a duress): no more receipts, posts
    # or position updates than a real cancel gives; the coordinators still see it open.
    db["incidents"].add_column("cover", int, not_null_default=0)
    db["positions"].add_column("unverified", int, not_null_default=0)
    db["telemetry"].add_column("unverified", int, not_null_default=0)
    db["nodes"].add_column("spoofed", int, not_null_default=0)     # packets that claimed it and proved nothing
    db["nodes"].add_column("spoofed_at", float)
    db["bracelets"].add_column("pin_failures", int, not_null_default=0)
    db["bracelets"].add_column("pin_failed_at", float)
    db["bracelets"].add_column("pin_locked_until", float)
    db["receipts"].add_column("priority", int, not_null_default=0)  # 0: a verified wearer, first
    db.execute("DROP INDEX receipts_queued")
    db.execute("CREATE INDEX receipts_queued ON receipts(priority, id) WHERE state = 'queued'")


def _v9(db: sqlite_utils.Database) -> None:
    """Console accounts that hold under attack: sessions the station can revoke (at logout, on a
    password change, by an administrator), and failed logins counted per account AND client, so
    that someone on the LAN typing wrong passwords locks out only themselves."""
    # The cookie carries a random token; only its SHA-256 is kept, so the database (or a
    # backup of it) gives nobody a session.
    db["console_sessions"].create({"token_hash": str, "user": str, "client": str, "created_at": float,
                                   "revoked_at": float}, pk="token_hash")
    db["console_sessions"].create_index(["user"])
    db["login_failures"].create({"user": str, "client": str, "failed": int, "failed_at": float,
                                 "locked_until": float}, pk=("user", "client"), defaults={"failed": 0})


def _v10(db: sqlite_utils.Database) -> None:
    """The event log readable in the coordinator's language (the template and values of the
    sentences the station wrote, station/wording.py), and retired bracelets remembered: the
    label a past alert was shown under must not turn into whatever name the node announces."""
    db["events"].add_column("wording", str)
    db["retired_bracelets"].create({"id": int, "node_num": int, "label": str, "public_key": str,
                                    "added_at": float, "retired_at": float, "retired_by": str}, pk="id")
    db["retired_bracelets"].create_index(["node_num"])


def _v11(db: sqlite_utils.Database) -> None:
    """Beyond the room (station/escalation): each alert's escalation chain, where it stands, and
    every notification it made with its delivery state. A step is fired (its notifications
    written) in the same transaction that moves the chain on, so a crash neither skips a step nor
    repeats one; a notification is claimed before it is sent."""
    db["escalations"].create({
        "incident_id": int, "kind": str, "ref": str, "started_at": float, "next_step": int, "next_at": float,
        "state": str, "stopped_at": float, "stopped_why": str,
    }, pk="incident_id", not_null={"kind", "ref", "started_at", "state"}, defaults={"next_step": 0})
    db.execute("CREATE INDEX escalations_due ON escalations(next_at) WHERE state = 'running'")
    db.execute("CREATE UNIQUE INDEX escalations_ref ON escalations(ref)")
    db["notifications"].create({
        "id": int, "incident_id": int, "step": int, "responder": str, "channel": str, "address": str,
        "text": str, "state": str, "created_at": float, "updated_at": float, "claimed_at": float,
        "sent_at": float, "next_attempt_at": float, "attempts": int, "reason": str, "receipt_id": int,
        "external_id": str,
    }, pk="id", not_null={"incident_id", "step", "responder", "channel", "state", "created_at"},
        defaults={"attempts": 0})
    db.execute("CREATE UNIQUE INDEX notifications_once ON notifications(incident_id, step, responder, channel)")
    db.execute("CREATE INDEX notifications_queued ON notifications(channel, id) WHERE state = 'queued'")


def _v12(db: sqlite_utils.Database) -> None:
    """The watch over wearers (station/watch): per wearer, whether her silence raises an alarm,
    how often her bracelet reports, after how long silence is an alarm, and her check-in schedule
    (NULL: the [watch] defaults); and what the watch has already raised, so that a restart
    neither repeats an alarm nor forgets one."""
    for col, typ, default in [("watch", int, 1), ("report_every_s", float, None), ("silent_alarm_s", float, None),
                              ("checkin_every_s", float, None), ("checkin_from", str, None),
                              ("checkin_to", str, None)]:
        db["bracelets"].add_column(col, typ, not_null_default=default) if default is not None \
            else db["bracelets"].add_column(col, typ)
    db["watch_state"].create({
        "node_num": int, "alarmed_heard": float, "silent_incident": int, "checkin_since": float,
        "last_checkin_at": float, "checkin_missed_at": float, "battery_warned": int,
    }, pk="node_num", defaults={"battery_warned": 0})


def _v13(db: sqlite_utils.Database) -> None:
    """Many stations, one network (station/network): the events this station owes the hub, in
    order (written by triggers in the same transaction as what they report, so a crash never
    loses one), and the hub's publication claims, so that one post goes out however many
    stations heard the alert."""
    db.execute("""CREATE TABLE network_queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                  body TEXT NOT NULL, created_at REAL NOT NULL, published_at REAL)""")
    db.execute("CREATE INDEX network_queue_unpublished ON network_queue(seq) WHERE published_at IS NULL")
    db["network_claims"].create({
        "incident_id": int, "destination": str, "state": str, "holder": str, "requested_at": float,
        "answered_at": float,
    }, pk=("incident_id", "destination"), not_null={"state"})
    # How the hub's claim stood when a post left: granted, or "alone" (posted without it).
    db["outbox"].add_column("claim", str)


def _v14(db: sqlite_utils.Database) -> None:
    """The hub's own word that it applied an event, beyond the broker's acknowledgement: a broker may
    drop what it queued for a hub that was away too long, and a row the hub never confirmed while
    it confirmed later ones is sent again (station/network/service.py)."""
    db["network_queue"].add_column("confirmed_at", float)
    db.execute("CREATE INDEX network_queue_unconfirmed ON network_queue(seq) WHERE confirmed_at IS NULL")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9, _v10,
                                                             _v11, _v12, _v13, _v14]


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> int:
    """Apply the pending migrations, each in its own transaction; return the schema version."""
    return apply(db, MIGRATIONS, "database")


def apply(db: sqlite_utils.Database, migrations: list[Callable[[sqlite_utils.Database], None]], what: str) -> int:
    current = schema_version(db)
    if current > len(migrations):
        raise RuntimeError(
            f"{what} schema version {current} is newer than this station ({len(migrations)}): "
            "upgrade the station software instead of downgrading it"
        )
    for version, step in enumerate(migrations[current:], start=current + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            db.execute(f"PRAGMA user_version={version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return len(migrations)
