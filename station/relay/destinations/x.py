"""X (Twitter) through tweepy's v2 Client, OAuth 1.0a user context."""

from __future__ import annotations

import requests
import tweepy

from station.relay.destinations.base import (Permanent, Posted, RateLimited, TimeoutAdapter, Transient, Uncertain,
                                             network_outcome, wait_until_reset)

OFFICIAL = "https://api.twitter.com"


class XDestination:
    idempotency_window_s = None

    def __init__(self, settings):
        self.name = settings.name
        self.base = settings.api_base_url or OFFICIAL
        s = settings.secrets
        self.client = tweepy.Client(
            consumer_key=s["consumer_key_file"].value, consumer_secret=s["consumer_secret_file"].value,
            access_token=s["access_token_file"].value, access_token_secret=s["access_token_secret_file"].value,
            wait_on_rate_limit=False)   # tweepy would sleep in our thread, or retry at once without a reset header
        adapter = TimeoutAdapter(settings.timeout_s, None if self.base == OFFICIAL else (OFFICIAL, self.base))
        self.client.session.mount(OFFICIAL, adapter)
        self.client.session.mount(self.base, adapter)

    def probe_url(self) -> str:
        return self.base

    def post(self, text: str, *, key: str, reply_to: str | None) -> Posted:
        try:
            r = self.client.create_tweet(text=text, in_reply_to_tweet_id=reply_to, user_auth=True)
        except (tweepy.HTTPException, requests.RequestException) as e:
            raise _outcome(e) from None
        data = getattr(r, "data", None)
        if not isinstance(data, dict) or not data.get("id"):
            # X said it created something (2xx) without saying what: it may be live.
            raise Uncertain("X answered without the post's id: it may have been published")
        tweet_id = str(data["id"])
        return Posted(tweet_id, f"https://x.com/i/status/{tweet_id}")

    def delete(self, remote_id: str) -> None:
        try:
            self.client.delete_tweet(remote_id, user_auth=True)
        except tweepy.NotFound:
            return  # already gone: the goal is reached
        except (tweepy.HTTPException, requests.RequestException) as e:
            raise _outcome(e) from None


def _outcome(e: Exception):
    if isinstance(e, requests.RequestException):
        return network_outcome(e)
    if isinstance(e, tweepy.TooManyRequests):
        return RateLimited("X rate limit (429)", wait_until_reset(e.reset_time, e.response))
    if isinstance(e, tweepy.Unauthorized):
        return Permanent("X rejected the credentials (401): check the key files")
    if isinstance(e, tweepy.TwitterServerError):
        return Transient(f"X server error ({e.response.status_code})")
    # 403 covers duplicate content; 400 a malformed post: sending it again cannot help.
    return Permanent(f"X refused ({e.response.status_code}): {_message(e)}")


def _message(e: tweepy.HTTPException) -> str:
    return "; ".join(e.api_messages or e.api_errors and [str(x) for x in e.api_errors] or [str(e)])[:200]
