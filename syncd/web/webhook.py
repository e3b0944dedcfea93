"""The Microsoft Graph change-notification endpoint: a small FastAPI app, served by uvicorn
in a background thread of the daemon.

The request only validates and queues: it answers Graph's validationToken handshake as
plain text, drops items with the wrong clientState, answers 202 at once (Graph wants an
answer within 3 seconds) and hands the calendars to sync to the daemon's loop through a
thread-safe queue. Nothing is synced inside a request, and nothing personal is logged.

It shares the process with the sync loop, so it is fenced in (:mod:`syncd.web.guard`): a
capped number of connections, each request on a deadline, the body capped as it streams, JSON
depth checked before parsing, and every line an outsider can cause rate-limited
(:mod:`syncd.web.ratelimit`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import resource
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import uvicorn
from fastapi import FastAPI, Request, Response

from syncd.errors import InputError
from syncd.sources.graph.notify import handle_notifications, validation_response
from syncd.web.guard import BodyCap, Limits, guarded_protocol, too_deep
from syncd.web.ratelimit import RateLimit

log = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()

RATE_LIMITED = ("syncd.web.webhook", "syncd.web.guard", "uvicorn.error", "asyncio")
"""Loggers whose lines a client can cause: uvicorn's "Invalid HTTP request received.",
asyncio's accept() errors, our own rejections. (A logger's filter sees only the records
logged on that very logger, so these are the exact names.)"""


@dataclass(frozen=True, slots=True)
class Work:
    """What one notification POST asks the daemon to do."""

    sync: frozenset[str] = frozenset()
    """Staff calendar keys to sync now."""
    renew: frozenset[str] = frozenset()
    """Subscription ids Graph asked us to reauthorize."""
    recreate: frozenset[str] = frozenset()
    """Staff calendar keys whose subscription Graph removed."""


WorkQueue = queue.SimpleQueue[Work | None]
"""``None`` only wakes the daemon's loop (on stop)."""


def create_app(
    *,
    client_state: str,
    directory: Callable[[], Mapping[str, str]],
    work: WorkQueue,
    limits: Limits = DEFAULT_LIMITS,
) -> FastAPI:
    """``directory()`` maps subscription id -> staff calendar key (called per request)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    def too_big() -> None:
        log.warning("refused a change notification over %d bytes", limits.max_body)

    app.add_middleware(BodyCap, max_body=limits.max_body, on_refused=too_big)

    async def receive(request: Request) -> Response:
        answer = validation_response(dict(request.query_params))
        if answer is not None:
            return Response(answer.body, status_code=answer.status, media_type=answer.content_type)
        body = await request.body()  # BodyCap has read it, within the cap
        if too_deep(body, limits.max_json_depth):
            log.warning("rejected a change notification: JSON nested too deep")
            return Response(status_code=400)
        try:
            out = handle_notifications(body, client_state=client_state, subscriptions=directory())
        except InputError as exc:
            log.warning("rejected a change notification: %s", exc)
            return Response(status_code=400)
        except Exception as exc:
            # Not uvicorn's "Exception in ASGI application" with a traceback: the text of an
            # exception here may quote the body.
            log.error("change notification not handled (%s)", type(exc).__name__)
            log.debug("traceback", exc_info=True)
            return Response(status_code=500)
        if out.rejected:
            # Spoofed, or a subscription we no longer keep: 202 all the same, so a stale one
            # is not retried by Graph for hours and a prober learns nothing.
            log.warning(
                "dropped %d change notification(s): wrong clientState or unknown subscription",
                out.rejected,
            )
        if out.sync_now or out.renew or out.recreate:
            work.put(Work(frozenset(out.sync_now), frozenset(out.renew), frozenset(out.recreate)))
        return Response(status_code=202)

    app.add_api_route("/graph/notifications", receive, methods=["POST"])
    app.add_api_route("/graph/lifecycle", receive, methods=["POST"])
    return app


class WebServer:
    """uvicorn in a daemon thread. Nothing listens until :meth:`start`.

    ``clock`` times the log rate limit (the daemon's clock)."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        clock: Callable[[], datetime],
        limits: Limits = DEFAULT_LIMITS,
    ):
        self.app, self.host, self.port = app, host, port
        self.clock, self.limits = clock, limits
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._quiet: RateLimit | None = None
        self.active_limits = limits
        """The limits in force: ``limits`` fitted to the descriptor limit at start."""

    def open_connections(self) -> int:
        return len(self._server.server_state.connections) if self._server else 0

    def start(self, timeout: float = 10.0) -> bool:
        """Listen; True once accepting connections, False if it could not (port in use)."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limits = self.limits.fitted(soft) if soft != resource.RLIM_INFINITY else self.limits
        if limits != self.limits:
            log.warning(
                "webhook: at most %d connections, backlog %d (within a quarter of the %d "
                "file descriptors allowed; raise LimitNOFILE= for more)",
                limits.max_connections,
                limits.backlog,
                soft,
            )
        self.active_limits = limits
        self._quiet = RateLimit(self.clock)
        self._quiet.attach(RATE_LIMITED)
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            http=guarded_protocol(limits, self._cut),
            # uvicorn's own 503 as a second line; +1 as it counts the asking connection too.
            limit_concurrency=limits.max_connections + 1,
            backlog=limits.backlog,
            timeout_keep_alive=limits.keep_alive,
            h11_max_incomplete_event_size=limits.max_header_bytes,
            log_config=None,  # keep syncd's logging as configured
            access_log=False,  # client addresses and query strings stay out of the logs
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        server = self._server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread: SIGTERM stays the daemon's.
        thread = self._thread = threading.Thread(target=self._serve, name="webhook", daemon=True)
        thread.start()
        ready = threading.Event()
        while not server.started and thread.is_alive() and timeout > 0:
            ready.wait(0.02)
            timeout -= 0.02
        return server.started

    def _serve(self) -> None:
        assert self._server is not None
        # uvicorn exits (SystemExit) when it cannot bind; it has logged why, and start()
        # reports it, so the daemon polls on without notifications.
        with contextlib.suppress(SystemExit):
            self._server.run()

    def _cut(self, why: str) -> None:
        if why == "refused":
            log.warning(
                "webhook: closed a new connection at once: %d already open",
                self.active_limits.max_connections,
            )
        else:
            log.warning("webhook: closed a connection with no complete request in time")

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._server = None
        if self._quiet is not None:
            self._quiet.detach()
            self._quiet = None
