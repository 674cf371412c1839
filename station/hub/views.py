"""What the hub shows (`station hub status`, and a console in hub mode): the live alerts first, then
the latest closed ones, each with the stations that heard it and who holds its posts. Read through
the (state, id) index, so the page costs the same with a week's backlog in the table."""

from __future__ import annotations

ALERTS_SQL = """
    SELECT i.id, printf('!%08x', i.node_num), i.state, i.opened_at,
           i.acknowledged_by || ' at ' || i.acknowledged_station,
           (SELECT group_concat(station, ', ') FROM receptions r WHERE r.hub_incident = i.id),
           (SELECT group_concat(destination || ': ' || station, ', ') FROM claims c WHERE c.hub_incident = i.id)
    FROM hub_incidents i
    WHERE i.id IN (SELECT id FROM hub_incidents WHERE state IN ('open', 'acknowledged') ORDER BY id DESC LIMIT 100)
       OR i.id IN (SELECT id FROM hub_incidents WHERE state = 'resolved' ORDER BY id DESC LIMIT 20)
    ORDER BY (i.state = 'resolved'), i.id DESC"""
ALERT_COLUMNS = ("id", "node", "state", "opened_at", "acknowledged", "stations", "claims")


def alerts(db) -> list[dict]:
    return [dict(zip(ALERT_COLUMNS, r)) for r in db.execute(ALERTS_SQL)]
