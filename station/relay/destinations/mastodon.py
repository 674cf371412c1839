"""Mastodon through Mastodon.py, with an Idempotency-Key on every post."""

from __future__ import annotations

import requests
from mastodon import (Mastodon, MastodonAPIError, MastodonNetworkError, MastodonNotFoundError,
                      MastodonRatelimitError, MastodonServerError, MastodonUnauthorizedError)

from station.relay.destinations.base import (Permanent, Posted, RateLimited, TimeoutAdapter, Transient, Uncertain,
                                             network_outcome, wait_until_reset)


class MastodonDestination:
    # Mastodon keeps an Idempotency-Key for an hour: a post repeated with the same key within it
    # returns the first status instead of publishing a second one.
    idempotency_window_s = 3000.0

    def __init__(self, settings):
        self.name = settings.name
        self.base = settings.api_base_url
        self.visibility = settings.visibility
        session = requests.Session()
        session.mount(self.base, TimeoutAdapter(settings.timeout_s))
        self.api = Mastodon(access_token=settings.secrets["access_token_file"].value, api_base_url=self.base,
                            request_timeout=settings.timeout_s, ratelimit_method="throw",
                            version_check_mode="none", session=session)

    def probe_url(self) -> str:
        return self.base

    def post(self, text: str, *, key: str, reply_to: str | None) -> Posted:
        try:
            st = self.api.status_post(text, in_reply_to_id=reply_to, visibility=self.visibility,
                                      idempotency_key=key)
        except Exception as e:
            raise self._outcome(e) from None
        return Posted(str(st["id"]), st.get("url"))

    def delete(self, remote_id: str) -> None:
        try:
            self.api.status_delete(remote_id)
        except MastodonNotFoundError:
            return
        except Exception as e:
            raise self._outcome(e) from None

    def _outcome(self, e: Exception):
        if isinstance(e, MastodonRatelimitError):
            # Mastodon.py has already turned the reset into our clock's terms (its server time diff).
            return RateLimited("Mastodon rate limit (429)", wait_until_reset(self.api.ratelimit_reset))
        if isinstance(e, MastodonUnauthorizedError):
            return Permanent("Mastodon rejected the access token (401): check the token file")
        if isinstance(e, MastodonServerError):
            return Transient(f"Mastodon server error: {e.args[1] if len(e.args) > 1 else e}")
        if isinstance(e, MastodonAPIError):
            status = e.args[1] if len(e.args) > 1 else None
            detail = e.args[3] if len(e.args) > 3 else e
            if isinstance(status, int) and 400 <= status < 500:
                return Permanent(f"Mastodon refused the post ({status}): {detail}"[:200])
            # An answer it could not read (a 200 that is not JSON, a proxy's page): proof of nothing.
            return Uncertain(f"Mastodon's answer could not be read ({detail}): the post may have been published"[:200])
        if isinstance(e, MastodonNetworkError):
            return network_outcome(e)
        return Uncertain(f"unexpected answer ({type(e).__name__}: {e}): the post may have been published"[:200])
