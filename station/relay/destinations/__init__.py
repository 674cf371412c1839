"""One module per kind of destination, all behind `base.Destination`."""

from __future__ import annotations

from station.relay.destinations.base import Destination, Outcome


def make(settings) -> Destination:
    if settings.kind == "x":
        from station.relay.destinations.x import XDestination
        return XDestination(settings)
    if settings.kind == "mastodon":
        from station.relay.destinations.mastodon import MastodonDestination
        return MastodonDestination(settings)
    if settings.kind == "webhook":
        from station.relay.destinations.webhook import WebhookDestination
        return WebhookDestination(settings)
    from station.relay.destinations.drill import DrillDestination
    return DrillDestination(settings)


__all__ = ["Destination", "Outcome", "make"]
