"""Microsoft Graph change notifications (webhooks) for calendar events: the pure pieces.

A web layer mounts one HTTPS endpoint and calls:

* :func:`validation_response` first: when Graph creates or renews a subscription it POSTs
  ``?validationToken=...`` and wants the token back as ``text/plain`` within 10 seconds.
* otherwise :func:`handle_notifications` with the raw body; answer ``202`` at once (Graph
  wants an answer within 3 seconds) and sync the mailboxes in ``sync_now`` afterwards.

Subscriptions are created and renewed by :class:`syncd.sources.graph.source.GraphSource`
(``subscribe`` / ``renew``); :func:`renewal_due` says when. No I/O, no clock here.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from syncd.errors import InputError

#: Graph's ceiling for event subscriptions (under 7 days).
MAX_EVENT_SUBSCRIPTION = timedelta(minutes=10080)
#: What we ask for: renewing every day keeps a missed renewal far from expiry.
DEFAULT_LIFETIME = timedelta(days=3)
DEFAULT_RENEW_MARGIN = timedelta(days=2)
_MAX_TOKEN_CHARS = 2048


@dataclass(frozen=True, slots=True)
class Subscription:
    """One Graph subscription on ``users/{mailbox}/events``."""

    id: str
    locator: str
    expires: datetime


@dataclass(frozen=True, slots=True)
class ValidationResponse:
    status: int
    content_type: str
    body: bytes


@dataclass(slots=True)
class NotificationOutcome:
    """What the daemon should do after one notification POST."""

    sync_now: set[str] = field(default_factory=set)
    """Locators (mailboxes) to sync straight away."""
    renew: set[str] = field(default_factory=set)
    """Subscription ids Graph asked us to reauthorize (renew)."""
    recreate: set[str] = field(default_factory=set)
    """Locators whose subscription Graph removed: subscribe again."""
    rejected: int = 0
    """Items dropped: wrong clientState or an unknown subscription (spoofed or stale)."""


def subscription_expiry(now: datetime, lifetime: timedelta = DEFAULT_LIFETIME) -> datetime:
    """The expirationDateTime to ask for, never beyond Graph's limit."""
    return now + min(lifetime, MAX_EVENT_SUBSCRIPTION - timedelta(minutes=5))


def renewal_due(sub: Subscription, now: datetime, margin: timedelta = DEFAULT_RENEW_MARGIN) -> bool:
    return sub.expires - now <= margin


def validation_response(query: Mapping[str, str]) -> ValidationResponse | None:
    """The answer to Graph's endpoint-validation request, or None if this is not one.

    ``query`` is the URL-decoded query string. Graph rejects the subscription unless the
    decoded token comes back verbatim as plain text (never HTML: it is attacker-chosen).
    """
    token = query.get("validationToken")
    if token is None:
        return None
    if not token or len(token) > _MAX_TOKEN_CHARS:
        return ValidationResponse(400, "text/plain; charset=utf-8", b"bad validationToken")
    return ValidationResponse(200, "text/plain; charset=utf-8", token.encode("utf-8"))


def handle_notifications(
    body: bytes | str,
    *,
    client_state: str,
    subscriptions: Mapping[str, str],
) -> NotificationOutcome:
    """Turn one change- or lifecycle-notification POST body into work.

    ``subscriptions`` maps subscription id -> locator (Graph's ``resource`` names the user
    by object id, not by the mailbox address we configured). Items whose ``clientState``
    differs are dropped: anyone can POST to a public URL. Raises :class:`InputError` when
    the body is not a Graph notification collection (answer 400).
    """
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InputError("Graph notification: body is not JSON") from None
    items = doc.get("value") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise InputError("Graph notification: no value array")
    out = NotificationOutcome()
    for item in items:
        if not isinstance(item, dict):
            out.rejected += 1
            continue
        sub_id = item.get("subscriptionId")
        state = item.get("clientState")
        locator = subscriptions.get(sub_id) if isinstance(sub_id, str) else None
        if (
            locator is None
            or not isinstance(state, str)
            or not hmac.compare_digest(state.encode(), client_state.encode())
        ):
            out.rejected += 1
            continue
        lifecycle = item.get("lifecycleEvent")
        if lifecycle == "reauthorizationRequired":
            out.renew.add(str(sub_id))
        elif lifecycle == "subscriptionRemoved":
            out.recreate.add(locator)
            out.sync_now.add(locator)
        else:
            # changeType created/updated/deleted, or lifecycle "missed": either way the
            # mailbox changed and a delta sync finds out how.
            out.sync_now.add(locator)
    return out
