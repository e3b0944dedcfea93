"""Microsoft 365 calendars through Microsoft Graph: app-only msal + httpx, calendarView delta.

One configured source is one Entra ID app registration in one tenant; each staff member's
calendar is named by a *locator*, their mailbox address (or user object id).

* Sync is ``GET /users/{mailbox}/calendarView/delta`` over the checking window, one
  :class:`~syncd.sources.graph.delta.Round` per calendar.
* 410 Gone / ``syncStateNotFound`` / ``resyncRequired`` restart the round from scratch.
* Throttling, tokens and per-mailbox concurrency: :mod:`syncd.sources.graph.http`.
* :meth:`GraphSource.sync_many` syncs up to 20 mailboxes per ``POST /$batch`` round trip.
* :meth:`GraphSource.subscribe` / ``renew`` / ``unsubscribe`` manage change-notification
  subscriptions; :mod:`syncd.sources.graph.notify` handles what Graph POSTs back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from syncd.errors import ConfigError, SourceError
from syncd.sources import _deadline
from syncd.sources.base import ChangeSet, Source, SourceOptions, SyncRequest, Window
from syncd.sources.graph.auth import Tokens
from syncd.sources.graph.delta import Round, user_segment, zulu
from syncd.sources.graph.http import GraphHttp
from syncd.sources.graph.notify import Subscription
from syncd.sources.graph.options import GraphOptions
from syncd.sources.graph.replies import (
    THROTTLED,
    SubscriptionGone,
    batch_answers,
    error_for,
    is_resync,
    raise_for,
    retry_after,
    throttled_error,
)

__all__ = ["GraphOptions", "GraphSource", "SubscriptionGone", "SyncRequest"]

MAX_BATCH = 20
_MAX_PAGES = 10_000


class GraphSource(Source):
    kind = "graph"
    Options = GraphOptions
    batch_size = MAX_BATCH

    def __init__(
        self,
        name: str,
        options: SourceOptions,
        secret: Callable[[str], str],
        *,
        sleep: Callable[[float], None] = _deadline.sleep,
    ):
        if not isinstance(options, GraphOptions):
            raise ConfigError(f"source {name}: options are not Graph options")
        super().__init__(name, options, secret)
        self.opts: GraphOptions = options
        self._sleep = sleep
        self._base = options.graph_url.rstrip("/")
        parts = urlsplit(self._base)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._tokens = Tokens(name, options, secret, f"{self._origin}/.default")
        self._http = GraphHttp(name, options, self._tokens, sleep)
        self._calls = _deadline.Calls(name)

    @property
    def http_requests(self) -> int:
        """HTTP round trips to Graph so far (a $batch counts once)."""
        return self._http.requests

    # --- the Source contract -----------------------------------------------------------
    def sync(
        self,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
    ) -> ChangeSet:
        with self._calls.call(self.opts.deadline_seconds):
            return self._sync(locator, state, known, window)

    def _sync(
        self, locator: str, state: str | None, known: Mapping[str, str], window: Window
    ) -> ChangeSet:
        rnd = self._round(locator, state, known, window)
        for _ in range(_MAX_PAGES):
            reply = self._http.request("GET", rnd.url, [locator])
            rnd.requests += reply.attempts
            if is_resync(reply):
                rnd.restart()
                continue
            raise_for(self.name, reply)
            if rnd.absorb(reply.body):
                return rnd.result()
        raise SourceError(f"{self.name}: Graph delta did not end after {_MAX_PAGES} pages")

    def sync_many(self, requests: Sequence[SyncRequest]) -> dict[str, ChangeSet | SourceError]:
        """Sync several mailboxes, 20 per ``POST /$batch``; the engine may call this instead
        of one :meth:`sync` per mailbox. Each locator gets its ChangeSet or its own error.

        ``ChangeSet.requests`` counts the Graph requests served for that mailbox (Graph
        throttles each batched request individually); :attr:`http_requests` counts round trips.
        The whole call, every batch and wait, runs under one ``deadline_seconds``.
        """
        with self._calls.call(self.opts.deadline_seconds):
            return self._sync_many(requests)

    def _sync_many(self, requests: Sequence[SyncRequest]) -> dict[str, ChangeSet | SourceError]:
        results: dict[str, ChangeSet | SourceError] = {}
        pending: dict[str, Round] = {}
        for req in requests:
            pending[req.locator] = self._round(req.locator, req.state, req.known, req.window)
        rounds_left = _MAX_PAGES
        while pending and rounds_left:
            rounds_left -= 1
            chunk = list(pending.values())[:MAX_BATCH]
            unbatchable = [r for r in chunk if not r.url.startswith(self._base + "/")]
            for rnd in unbatchable:  # a link off our base URL: no $batch, but still synced
                results[rnd.locator] = self._sync_round_alone(rnd)
                del pending[rnd.locator]
            chunk = [r for r in chunk if r.locator in pending]
            if not chunk:
                continue
            delay = self._batch_once(chunk, results)
            for rnd in chunk:
                if rnd.locator in results:
                    pending.pop(rnd.locator, None)
            if delay and pending:
                if not _deadline.time_left(delay):
                    for locator in pending:
                        results[locator] = throttled_error(self.name, delay)
                    return results
                self._sleep(delay)
        for locator in pending:
            results[locator] = SourceError(f"{self.name}: Graph delta did not end")
        return results

    def abort(self) -> None:
        self._calls.abort()

    def close(self) -> None:
        self.abort()
        self._http.close()
        self._tokens.close()

    # --- change-notification subscriptions ---------------------------------------------
    def subscribe(
        self,
        locator: str,
        *,
        notification_url: str,
        client_state: str,
        expires: datetime,
        lifecycle_url: str | None = None,
    ) -> Subscription:
        """Ask Graph to POST to ``notification_url`` when events of this mailbox change.

        Graph first checks the URL with a validationToken request, so the endpoint must be
        up (see :func:`syncd.sources.graph.notify.validation_response`).
        """
        if not 1 <= len(client_state) <= 128:
            raise ConfigError("Graph clientState must be 1 to 128 characters")
        body: dict[str, Any] = {
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "resource": f"users/{user_segment(locator)}/events",
            "expirationDateTime": zulu(expires),
            "clientState": client_state,
            "latestSupportedTlsVersion": "v1_2",
        }
        if lifecycle_url:
            body["lifecycleNotificationUrl"] = lifecycle_url
        with self._calls.call(self.opts.deadline_seconds):
            reply = self._http.request("POST", f"{self._base}/subscriptions", [locator], body=body)
        if reply.status not in (200, 201):
            raise error_for(self.name, reply, "subscription")
        return _subscription(reply.body, locator, self.name)

    def renew(self, sub: Subscription, expires: datetime) -> Subscription:
        url = f"{self._base}/subscriptions/{quote(sub.id, safe='')}"
        with self._calls.call(self.opts.deadline_seconds):
            reply = self._http.request(
                "PATCH", url, [sub.locator], body={"expirationDateTime": zulu(expires)}
            )
        if reply.status == 404:
            raise SubscriptionGone(f"{self.name}: Graph no longer has the subscription")
        if reply.status != 200:
            raise error_for(self.name, reply, "subscription")
        return _subscription(reply.body, sub.locator, self.name)

    def unsubscribe(self, sub: Subscription) -> None:
        url = f"{self._base}/subscriptions/{quote(sub.id, safe='')}"
        with self._calls.call(self.opts.deadline_seconds):
            reply = self._http.request("DELETE", url, [sub.locator])
        if reply.status not in (200, 204, 404):  # 404: already gone, which is what we want
            raise error_for(self.name, reply, "subscription")

    # --- delta rounds ------------------------------------------------------------------
    def initial_url(self, locator: str, window: Window) -> str:
        start, end = zulu(window.start), zulu(window.end)
        return (
            f"{self._base}/users/{user_segment(locator)}/calendarView/delta"
            f"?startDateTime={start}&endDateTime={end}"
        )

    def check_link(self, link: Any) -> str:
        # A deltaLink comes from stored state or the server: never send our token elsewhere.
        if not isinstance(link, str) or not link.startswith(self._origin + "/"):
            raise SourceError(f"{self.name}: Graph returned a link to another host")
        return link

    def _round(
        self, locator: str, state: str | None, known: Mapping[str, str], window: Window
    ) -> Round:
        return Round(
            self.name,
            locator,
            state,
            known,
            window,
            initial_url=self.initial_url,
            check_link=self.check_link,
        )

    def _sync_round_alone(self, rnd: Round) -> ChangeSet | SourceError:
        try:
            return self.sync(rnd.locator, rnd.state, rnd.known, rnd.window)
        except SourceError as exc:
            return exc

    def _batch_once(self, chunk: list[Round], results: dict[str, ChangeSet | SourceError]) -> float:
        """One POST /$batch for ``chunk``; returns how long to wait before the next one."""
        prefer = ", ".join(self._http.preferences())
        payload = {
            "requests": [
                {
                    "id": str(i),
                    "method": "GET",
                    "url": rnd.url[len(self._base) :],
                    "headers": {"Prefer": prefer},
                }
                for i, rnd in enumerate(chunk)
            ]
        }
        try:
            reply = self._http.request(
                "POST", f"{self._base}/$batch", [r.locator for r in chunk], body=payload
            )
            if reply.status != 200:
                raise error_for(self.name, reply, "batch")
            answers = batch_answers(reply.body, self.name)
        except SourceError as exc:
            for rnd in chunk:
                results[rnd.locator] = exc
            return 0.0
        delay = 0.0
        for i, rnd in enumerate(chunk):
            sub = answers.get(str(i))
            if sub is None:
                results[rnd.locator] = SourceError(f"{self.name}: Graph $batch answer incomplete")
                continue
            rnd.requests += 1
            try:
                if is_resync(sub):
                    rnd.restart()
                elif sub.status in THROTTLED:
                    wait = retry_after(sub, rnd.throttled)
                    rnd.throttled += 1
                    if rnd.throttled > self.opts.max_retries or wait > self.opts.max_retry_wait:
                        raise throttled_error(self.name, wait)
                    delay = max(delay, wait)
                else:
                    raise_for(self.name, sub)
                    if rnd.absorb(sub.body):
                        results[rnd.locator] = rnd.result()
            except SourceError as exc:
                results[rnd.locator] = exc
        return delay


def _subscription(body: Any, locator: str, name: str) -> Subscription:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise SourceError(f"{name}: Microsoft Graph sent a malformed subscription")
    try:
        expires = datetime.fromisoformat(str(body.get("expirationDateTime")).replace("Z", "+00:00"))
    except ValueError:
        raise SourceError(f"{name}: Microsoft Graph sent a malformed subscription") from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return Subscription(id=body["id"], locator=locator, expires=expires)
