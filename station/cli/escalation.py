"""`station escalation`: the policy as this station reads it (who a step would reach now) and
every chain that is running, with its messages and their delivery states."""

from __future__ import annotations

import time

import click

from station.cli.common import emit_json, load_config, open_db, table, when
from station.escalation.policy import CHANNELS


def register(cli: click.Group) -> None:
    @cli.command("escalation")
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--limit", default=20, show_default=True, help="How many recent messages to list.")
    @click.pass_context
    def escalation_cmd(ctx, as_json: bool, limit: int) -> None:
        """Who an alert reaches beyond the room, and where each running chain stands."""
        policy = load_config(ctx).escalation()
        db = open_db(ctx)
        now = time.time()
        steps = [{"step": i + 1, "after_s": s.after_s, "channels": list(s.channels),
                  "reaches_now": [r.name for r in policy.who_at(s, now)]} for i, s in enumerate(policy.steps)]
        responders = [{"name": r.name, "channels": [c for c in CHANNELS if r.address(c)],
                       "on_call_now": r.on_call_at(_local(now, policy.time_zone)),
                       "contact_for": [f"!{n:08x}" for n in sorted(r.contact_for)]} for r in policy.responders]
        chains = [dict(zip(("incident", "ref", "kind", "state", "next_step", "next_at", "stopped_why"), r))
                  for r in db.execute("SELECT incident_id, ref, kind, state, next_step, next_at, stopped_why "
                                      "FROM escalations ORDER BY (state = 'running') DESC, incident_id DESC "
                                      "LIMIT 50").fetchall()]
        messages = [dict(zip(("incident", "step", "responder", "channel", "state", "reason", "updated_at"), r))
                    for r in db.execute("SELECT incident_id, step, responder, channel, state, reason, updated_at "
                                        "FROM notifications ORDER BY id DESC LIMIT ?", (limit,)).fetchall()]
        if as_json:
            emit_json({"active": policy.active, "time_zone": policy.time_zone, "responders": responders,
                       "steps": steps, "chains": chains, "messages": messages})
            return
        if not policy.active:
            click.echo("escalation is OFF: alerts ring the room and nobody beyond it "
                       "([escalation] enabled, [[responders]] and [[escalation_steps]] in the config)")
        table([[s["step"], f"{s['after_s']:g} s", ", ".join(s["channels"]), ", ".join(s["reaches_now"]) or "-"]
               for s in steps], ["STEP", "AFTER", "CHANNELS", "REACHES NOW"])
        click.echo("")
        table([[r["name"], ", ".join(r["channels"]) or "NONE", "yes" if r["on_call_now"] else "no",
                ", ".join(r["contact_for"]) or "-"] for r in responders],
              ["RESPONDER", "CHANNELS", "ON CALL NOW", "TRUSTED CONTACT FOR"])
        click.echo("")
        table([[c["incident"], c["ref"], c["kind"], c["state"],
                (f"step {c['next_step'] + 1} at {when(c['next_at'])}" if c["state"] == "running" else
                 c["stopped_why"] or "-")] for c in chains], ["ALERT", "REF", "KIND", "STATE", "NEXT"])
        click.echo("")
        table([[m["incident"], "stand down" if m["step"] == -1 else "contacts" if m["step"] == -2 else m["step"] + 1,
                m["responder"], m["channel"], m["state"], m["reason"] or "", when(m["updated_at"])] for m in messages],
              ["ALERT", "STEP", "TO", "CHANNEL", "STATE", "REASON", "UPDATED"])


def _local(at: float, zone: str):
    import zoneinfo
    from datetime import datetime
    return datetime.fromtimestamp(at, zoneinfo.ZoneInfo(zone))
