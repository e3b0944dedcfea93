"""Limits that keep the webhook from taking the daemon down with it.

The endpoint faces the internet (through the reverse proxy), in the same process as the sync
loop: every connection it holds is a file descriptor the sync loop cannot use. So:

* :class:`Limits` caps open connections far below the process's descriptor limit, and gives
  each request a deadline from the moment its connection opened (or its previous answer), so
  a client that sends headers or a body a byte at a time (slow loris) is cut off.
* :func:`guarded_protocol` enforces both in uvicorn's h11 protocol: uvicorn's own
  ``limit_concurrency`` answers 503 only once a request has arrived, so half-open connections
  that never send one would still pile up.
* :class:`BodyCap` reads the body as it streams and answers 413 as soon as it passes the cap,
  before the rest arrives; nothing beyond the cap is buffered.
* :func:`too_deep` rejects deeply nested JSON before it is parsed (the parser's recursion
  limit would otherwise become a 500 with a traceback).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one webhook may hold. Graph sends a few small POSTs at a time through one proxy."""

    max_connections: int = 64
    """Open connections at once; one more is closed as soon as it is accepted."""
    request_timeout: float = 10.0
    """Seconds from a connection opening (or its previous answer) to the request answered."""
    keep_alive: int = 5
    """Seconds an idle kept-alive connection stays open."""
    max_body: int = 1 << 20
    """Graph's notification collections are a few kB; a bigger body is not from Graph."""
    max_header_bytes: int = 16 * 1024
    max_json_depth: int = 32
    backlog: int = 16
    """Pending connections the kernel queues. They cost no descriptor of ours until accepted,
    but asyncio accepts up to ``backlog`` in one go before any is seen (and cut), and up to
    three such batches can be in flight: see :meth:`descriptors`."""

    def descriptors(self) -> int:
        """The most file descriptors the webhook can hold at once: the listening socket,
        the connections kept, and three accept batches not yet cut."""
        return 1 + self.max_connections + 3 * self.backlog

    def fitted(self, nofile: int) -> Limits:
        """These limits, lowered if need be so that the webhook holds at most a quarter of
        the descriptor limit ``nofile``: the sync loop keeps the rest, whatever the webhook
        is sent."""
        quarter = nofile // 4
        if self.descriptors() <= quarter:
            return self
        backlog = min(self.backlog, max(1, (quarter - 1) // 8))
        connections = max(1, min(self.max_connections, quarter - 1 - 3 * backlog))
        return replace(self, backlog=backlog, max_connections=connections)


def guarded_protocol(limits: Limits, on_event: Callable[[str], None]) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a connection cap and a per-request deadline.

    ``on_event("refused" | "timed-out")`` is called for each connection cut (for logs)."""

    class Guarded(H11Protocol):
        _deadline: Any = None

        def connection_made(self, transport: Any) -> None:
            if len(self.connections) >= limits.max_connections:
                # Closed at once: the descriptor is free again before the next accept.
                self.transport = transport
                transport.abort()
                on_event("refused")
                return
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request on this connection gets its own deadline

        def _arm(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self._deadline = self.loop.call_later(limits.request_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            # Nothing answered since the deadline was armed (an answer re-arms it): headers
            # or body still dripping in, or an idle connection uvicorn has not closed.
            self._deadline = None
            if not self.transport.is_closing():
                on_event("timed-out")
                self.transport.abort()

    return Guarded


class BodyCap:
    """ASGI middleware: the whole body, at most ``max_body`` bytes, read before the app runs.

    A declared Content-Length over the cap is refused unread; a chunked body is refused as
    soon as the running count passes it. Either way the answer closes the connection, so the
    rest is never read. A client that goes away mid-body never reaches the app."""

    def __init__(self, app: ASGIApp, max_body: int, on_refused: Callable[[], None]):
        self.app, self.max_body, self.on_refused = app, max_body, on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # only http.disconnect is left
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        self.on_refused()
        headers = [(b"content-length", b"0"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


_JSON_SPECIAL = re.compile(rb'["\\\[\]{}]')


def too_deep(body: bytes, limit: int) -> bool:
    """True if ``body`` nests arrays/objects more than ``limit`` deep (strings skipped).

    Jumps from one special byte to the next, so it is linear and stops at the first level
    past the limit; malformed JSON is left for the parser to reject."""
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_SPECIAL.finditer(body):
        at = match.start()
        if at == escaped_at:
            continue
        char = body[at]
        if in_string:
            if char == 0x5C:  # backslash: the next byte is escaped
                escaped_at = at + 1
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):
            depth -= 1
    return False
