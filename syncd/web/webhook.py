"""The Microsoft Graph change-notification endpoint: a small FastAPI app, served by uvicorn
in a background thread of the daemon.

The request only validates and queues: it answers Graph's validationToken handshake as
plain text, drops items with the wrong clientState, answers 202 at once (Graph wants an
answer within 3 seconds) and hands the calendars to sync to the daemon's loop through a
thread-safe queue. Nothing is synced inside a request, and nothing personal is logged.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, Request, Response

from syncd.errors import InputError
from syncd.sources.graph.notify import handle_notifications, validation_response

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
"""Graph's notification collections are a few kB; a bigger body is not from Graph."""


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
) -> FastAPI:
    """``directory()`` maps subscription id -> staff calendar key (called per request)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    async def receive(request: Request) -> Response:
        answer = validation_response(dict(request.query_params))
        if answer is not None:
            return Response(answer.body, status_code=answer.status, media_type=answer.content_type)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return Response(status_code=413)
        body = await request.body()
        if len(body) > MAX_BODY:
            return Response(status_code=413)
        try:
            out = handle_notifications(body, client_state=client_state, subscriptions=directory())
        except InputError as exc:
            log.warning("rejected a change notification: %s", exc)
            return Response(status_code=400)
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
    """uvicorn in a daemon thread. Nothing listens until :meth:`start`."""

    def __init__(self, app: FastAPI, host: str, port: int):
        self.app, self.host, self.port = app, host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> bool:
        """Listen; True once accepting connections, False if it could not (port in use)."""
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
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

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._server = None
