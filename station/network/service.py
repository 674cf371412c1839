"""This station on the NGO's network: its events to the hub (from network_queue, in order, each
marked published at the broker's acknowledgement), and what the hub says back on the station's own
topic: another station's acknowledgement of an alert this one heard too (the room stops ringing),
and the publication claims (claims.py). With no broker or no hub the station does everything it
does alone; the queue waits for them."""

from __future__ import annotations

import json
import logging
import time

from station import incidents
from station.escalation.channels import ChannelError, read_secret
from station.incidents import log_event
from station.network import claims, queue
from station.network.mqtt import Broker, MqttLink, client_id
from station.network.publisher import DurablePublisher
from station.relay.compose import locate
from station.wording import Wording

log = logging.getLogger(__name__)
HEALTH_EVERY_S = 60.0
RESEND_GRACE_S = 60.0


def topics(root: str, station: str) -> tuple[str, str]:
    """(where this station's events go, where the hub answers it)."""
    return f"{root}/stations/{station}/events", f"{root}/hub/to/{station}"


class Network:
    def __init__(self, cfg, writer, clock, *, on_acknowledged=lambda: None, wake_relay=lambda: None):
        n = cfg.network
        self.enabled = n["enabled"]
        self.cfg = cfg
        self.writer = writer
        self.clock = clock
        self.on_acknowledged = on_acknowledged
        self.wake_relay = wake_relay
        self.station = n["station_id"]
        self.precision = n["precision"]
        self.places = cfg.places()
        self.radius_km = cfg.relay["city_radius_km"]
        self.claim_wait_s = float(n["claim_wait_s"])
        self.events_topic, self.answers_topic = topics(n["topic_root"], self.station)
        self.link: MqttLink | None = None
        self.problem = ""
        self.applied = 0
        self._health_sent = float("-inf")
        self._health_state: dict | None = None
        # What the hub has confirmed, up to where: a row older than that still unconfirmed after
        # resend_grace_s was lost between the broker and the hub, and goes again.
        self.confirmed_upto = 0
        self.resend_grace_s = RESEND_GRACE_S
        self.publisher = DurablePublisher(writer, clock, lambda: self.link, fetch=self._fetch, mark=_mark,
                                          name="network", lost=self._lost)

    def start(self) -> "Network":
        self.writer.call(queue.install if self.enabled else queue.uninstall)
        if not self.enabled:
            return self
        n = self.cfg.network
        try:
            password = read_secret(n["password_file"], self.cfg.base_dir, "[network] password_file")
        except ChannelError as e:
            self.problem = e.reason
            log.error("the network link cannot start: %s; the station works alone", e.reason)
            return self
        host, port = Broker.parse(n["broker"])
        ca = str(self.cfg.base_dir / n["ca_file"]) if n["ca_file"] else None
        self.link = MqttLink(Broker(host, port, self.station, password, ca, n["keepalive_s"]),
                             client_id(self.station, password), subscriptions=[self.answers_topic],
                             on_message=self._message, on_state=lambda up: self.publisher.wake()).start()
        self.publisher.start()
        return self

    def stop(self) -> None:
        if self.link is not None:
            self.publisher.stop()
            self.link.stop()

    def wake(self) -> None:
        self.publisher.wake()

    # -- to the hub ----------------------------------------------------------------------------
    def _payload(self, seq: int, kind: str, body: str, at: float) -> bytes:
        data = json.loads(body)
        if "lat" in data:
            # The hub's audience gets the precision [network] precision allows, never more.
            where = locate(data.get("lat"), data.get("lon"), self.precision, list(self.places), self.radius_km)
            data["lat"], data["lon"] = (where.lat, where.lon) if where else (None, None)
            data["place"] = where.text if where else None
        return json.dumps({"v": 1, "station": self.station, "seq": seq, "kind": kind, "at": at,
                           "data": data}).encode()

    def _fetch(self, reader, after: int, limit: int) -> list[tuple[int, str, bytes]]:
        return [(seq, self.events_topic, self._payload(seq, kind, body, at))
                for seq, kind, body, at in queue.unpublished(reader, after, limit)]

    def _lost(self, reader, limit: int) -> list[tuple[int, str, bytes]]:
        if not self.confirmed_upto:
            self.confirmed_upto = queue.confirmed_upto(reader)
        rows = queue.lost(reader, self.confirmed_upto, self.clock.now() - self.resend_grace_s, limit)
        if rows:
            log.warning("%d events the broker took never reached the hub (it confirmed later ones): sending them "
                        "again", len(rows))
        return [(seq, self.events_topic, self._payload(seq, kind, body, at)) for seq, kind, body, at in rows]

    # -- from the hub --------------------------------------------------------------------------
    def _message(self, topic: str, payload: bytes, ack) -> None:
        try:
            msg = json.loads(payload)
            kind = msg["kind"]
            if kind == "applied":
                ranges = [(int(a), int(b)) for a, b in msg["ranges"]]
            else:
                iid = int(msg["incident"])
        except (ValueError, KeyError, TypeError):
            log.warning("a message from the hub is not one: %r", payload[:120])
            ack()                        # garbage is dropped, never retried forever
            return
        at = self.clock.now()
        after = None
        if kind == "applied":
            def job(db):
                queue.confirm(db, ranges, at)
            self.confirmed_upto = max([self.confirmed_upto, *(b for _, b in ranges)])
        elif kind == "acknowledged":
            by, station = str(msg.get("by") or "?")[:80], str(msg.get("station") or "?")[:40]

            def job(db):
                return _acknowledged_elsewhere(db, iid, by, station, at)

            def after(silenced):
                if silenced:
                    self.on_acknowledged()
        elif kind == "claim":
            def job(db):
                claims.answered(db, iid, str(msg.get("destination")), bool(msg.get("granted")),
                                str(msg.get("holder") or "?")[:40], at)

            def after(result):
                self.wake_relay()
        else:
            log.info("the hub sent %r, which this station does not know", kind)
            ack()
            return

        def committed(result) -> None:
            # Acknowledged to the broker once stored, in order; not waited for on the network
            # thread (a job that fails is never acknowledged, and comes again).
            ack()
            self.applied += 1
            if after is not None:
                after(result)
        self.writer.submit(job, on_commit=committed, name=f"hub-{kind}")

    def health(self, snapshot: dict) -> None:
        """From the daemon's status snapshot: what the hub's console shows of this station (its
        radio, its relay, its queue), and where it is when its GPS knows. Sent when the radio or
        the relay changes, else once a minute."""
        if not self.enabled:
            return
        radio, relay = snapshot.get("radio") or {}, snapshot.get("relay") or {}
        fix = (snapshot.get("gps") or {}).get("fix") or {}
        state = {"phase": (snapshot.get("station") or {}).get("phase"), "radio": radio.get("status"),
                 "virtual": bool(radio.get("virtual")), "relay_online": relay.get("online")}
        if state == self._health_state and time.monotonic() - self._health_sent < HEALTH_EVERY_S:
            return
        self._health_state, self._health_sent = state, time.monotonic()
        body = {**state, "outbox_ready": (relay.get("outbox") or {}).get("ready"),
                "queue": (snapshot.get("network") or {}).get("queue"),
                "escalation_running": (snapshot.get("escalation") or {}).get("running"),
                "lat": fix.get("lat"), "lon": fix.get("lon")}
        at = self.clock.now()
        self.writer.submit(lambda db: queue.health(db, body, at), name="network-health")

    def gate(self, row: dict) -> tuple[str, str | None]:
        """For the relay: may this row go out? See claims.py."""
        if not self.enabled:
            return claims.GRANTED, None
        return self.writer.call(lambda db: claims.gate(db, row["incident_id"], row["destination"],
                                                       self.clock.now(), self.claim_wait_s))

    def status(self, reader) -> dict:
        if not self.enabled:
            return {"enabled": False}
        return {"enabled": True, "station": self.station, "connected": bool(self.link and self.link.connected),
                "error": self.problem or (self.link.error if self.link else ""), "queue": queue.depth(reader),
                "inflight": self.publisher.inflight, "published": self.publisher.published, "from_hub": self.applied,
                "resent": self.publisher.resent, "unconfirmed": queue.unconfirmed(reader),
                "at": time.time()}


def _mark(db, seqs: list[int], at: float) -> None:
    db.conn.executemany("UPDATE network_queue SET published_at=? WHERE seq=?", [(at, s) for s in seqs])


def _acknowledged_elsewhere(db, iid: int, by: str, station: str, at: float) -> bool:
    row = db.execute("SELECT state FROM incidents WHERE id=?", (iid,)).fetchone()
    if row is None or row[0] != incidents.OPEN:
        return False
    incidents.acknowledge(db, iid, f"{by} at {station}", at)
    log_event(db, iid, at, "hub", "acknowledged at another station",
              Wording("{by} at station {station}: the room here falls silent", by=by, station=station))
    return True
