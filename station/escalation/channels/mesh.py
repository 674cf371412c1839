"""The mesh: a direct message to the responder's own node, sealed with PKI. It joins the receipts
queue (station/receipts.py), so that it is paced 2.5 s from any other text (the firmware drops a
second text within 2 s, PhoneAPI.cpp handleToRadioPacket), retried on the routing errors that
retrying mends, and marked delivered when her node acknowledges. The station's radio holds her
pinned key as a contact (station/radio/keeper.py), as it does every bracelet's, since 2.7.19+
refuses a DM to a node whose key it lacks (Router.cpp:659-664)."""

from __future__ import annotations

import sqlite_utils

from station.nodeids import parse_node
from station.storage.records import queue_receipt

KIND = "escalation"      # receipts.kind of these messages: not receipts to a wearer


def queue(db: sqlite_utils.Database, notification_id: int, incident_id: int, address: str, text: str,
          at: float) -> None:
    rid = queue_receipt(db, incident_id, parse_node(address), KIND, text, at, priority=0)
    db.execute("UPDATE notifications SET receipt_id=?, state='sending' WHERE id=?", (rid, notification_id))
