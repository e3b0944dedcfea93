"""Graph's HTTP client: bearer token, throttling retries and per-mailbox concurrency.

* 429/503/504 honour ``Retry-After`` a bounded number of times (``sleep`` is injectable),
  then raise ``SourceError(retry_after=...)``; never sleeping past the call's deadline.
* A 401 drops the cached token and tries once more with a fresh one.
* At most 4 requests per mailbox are in flight (Graph's limit per app per mailbox).
"""

from __future__ import annotations

import logging
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx

from syncd.errors import SourceError
from syncd.sources._deadline import spent_or, time_left
from syncd.sources._tls import tls_context
from syncd.sources._watch import watched_transport
from syncd.sources.graph.auth import Tokens, transport_error
from syncd.sources.graph.options import GraphOptions
from syncd.sources.graph.replies import NOT_JSON, THROTTLED, Reply, retry_after, throttled_error

log = logging.getLogger(__name__)

MAX_CONCURRENT_PER_MAILBOX = 4


class GraphHttp:
    """Made without I/O; the httpx client and the token come on first use."""

    def __init__(
        self,
        name: str,
        opts: GraphOptions,
        tokens: Tokens,
        sleep: Callable[[float], None],
    ):
        self.name, self.opts, self.tokens, self._sleep = name, opts, tokens, sleep
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._http: httpx.Client | None = None
        self.requests = 0
        """HTTP round trips to Graph so far (a $batch counts once)."""

    def preferences(self) -> list[str]:
        return [
            f"odata.maxpagesize={self.opts.page_size}",
            'outlook.timezone="UTC"',
            'outlook.body-content-type="text"',
            # Immutable ids survive moves between folders, so hrefs and uids stay stable.
            'IdType="ImmutableId"',
        ]

    def request(
        self,
        method: str,
        url: str,
        mailboxes: Sequence[str],
        *,
        body: Any = None,
    ) -> Reply:
        """One Graph call with throttling retries and one token refresh on 401."""
        refreshed = False
        attempts = 0
        while True:
            attempts += 1
            headers = [
                ("Authorization", f"Bearer {self.tokens.token()}"),
                ("Accept", "application/json"),
                ("client-request-id", str(uuid.uuid4())),
            ]
            headers += [("Prefer", p) for p in self.preferences()]
            with self._mailbox_slots(mailboxes):
                reply = self._send(method, url, headers, body)
            if reply.status == 401 and not refreshed:
                # A revoked or expired token: ask for a fresh one once before giving up.
                refreshed = True
                self.tokens.drop()
                continue
            if reply.status in THROTTLED:
                wait = retry_after(reply, attempts - 1)
                if (
                    attempts > self.opts.max_retries
                    or wait > self.opts.max_retry_wait
                    or not time_left(wait)
                ):
                    raise throttled_error(self.name, wait)
                log.warning(
                    "%s: Microsoft Graph busy (%d), retrying in %.1fs",
                    self.name,
                    reply.status,
                    wait,
                )
                self._sleep(wait)
                continue
            return Reply(reply.status, reply.headers, reply.body, attempts)

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _send(self, method: str, url: str, headers: list[tuple[str, str]], body: Any) -> Reply:
        client = self._client()
        try:
            resp = client.request(method, url, headers=headers, json=body)
            with self._lock:
                self.requests += 1
        except httpx.TimeoutException:
            raise spent_or(SourceError(f"{self.name}: Microsoft Graph timed out")) from None
        except httpx.HTTPError as exc:
            raise spent_or(transport_error(self.name, "Microsoft Graph", exc)) from None
        parsed: Any = None
        if resp.content:
            try:
                parsed = resp.json()
            except ValueError:
                parsed = NOT_JSON
        return Reply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, parsed)

    @contextmanager
    def _mailbox_slots(self, mailboxes: Sequence[str]) -> Iterator[None]:
        # Graph allows 4 concurrent requests per app per mailbox; more only earn 429s.
        # Sorted acquisition keeps two batches over the same mailboxes from deadlocking.
        with ExitStack() as stack:
            for mailbox in sorted({m.lower() for m in mailboxes}):
                with self._lock:
                    slot = self._slots.setdefault(
                        mailbox, threading.BoundedSemaphore(MAX_CONCURRENT_PER_MAILBOX)
                    )
                stack.enter_context(slot)
            yield

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                # trust_env=False: the configured CA and proxy are the whole truth, whatever
                # REQUESTS_CA_BUNDLE / SSL_CERT_FILE / HTTPS_PROXY the host happens to set.
                # The transport lets a call's deadline cut a dripping reply (the proxy goes
                # to it too: a Client-level proxy would bypass it).
                self._http = httpx.Client(
                    transport=watched_transport(
                        verify=self._tls(), trust_env=False, proxy=self.opts.proxy
                    ),
                    trust_env=False,
                    timeout=self.opts.timeout,
                    follow_redirects=False,
                )
            return self._http

    def _tls(self) -> ssl.SSLContext:
        return tls_context(verify_tls=self.opts.verify_tls, ca_file=self.opts.ca_file)
