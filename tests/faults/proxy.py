"""A fault-injecting proxy to put in front of a real server (Radicale, the EWS and Graph fakes).

It runs on asyncio in one background thread and listens on a loopback port. Point the client
at :attr:`FaultProxy.url` instead of the server and choose what happens to the next requests:

    with FaultProxy(("127.0.0.1", radicale_port)) as proxy:
        proxy.set(Drip(every=0.1))          # every response one byte per 100 ms
        proxy.set(Stall(), times=1)         # the next request is never answered, then pass
        proxy.set(Status(503, {"Retry-After": "7"}), path="/v1.0/")
        proxy.set(Reset())                  # connection reset (RST) on each request
        proxy.set(None)                     # pass everything through again
        proxy.wait_requests(3, timeout=30)  # block until 3 requests have arrived

Faults:

* :class:`Stall`: the request is read and never answered; the connection stays open.
* :class:`Drip`: the request is forwarded and the server's answer (status line, headers
  and body) is sent on one byte every ``every`` seconds: each read gets a byte in time, so a
  read timeout never fires.
* :class:`Reset`: the connection is reset (TCP RST) instead of answered.
* :class:`Status`: a canned answer (500, 503 with Retry-After, 401 ...) without asking the
  server.

Modes:

* ``mode="http"`` (default): HTTP/1.1 aware, faults chosen per request (optionally only for
  paths starting with ``path``, and only ``times`` times). Each forwarded request gets its own
  upstream connection and the answer goes back with ``Connection: close``; canned answers keep
  the client's connection open. Requests need a Content-Length body (no chunked uploads).
* ``mode="tcp"``: bytes piped both ways, faults chosen per connection (:class:`Status` is not
  available); for non-HTTP protocols such as SMTP.

TLS: ``server_tls`` makes the proxy speak TLS to the client (give it a context holding a
certificate the client trusts); ``upstream_tls`` makes it speak TLS to the server.

Bookkeeping for tests: :attr:`requests` (requests, or connections in tcp mode, seen so far),
:meth:`wait_requests`, :attr:`open_connections`, :meth:`wait_idle` (all client connections
gone: the client really gave up). :func:`refused_port` gives a loopback port nobody listens on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Drip", "Fault", "FaultProxy", "Reset", "Stall", "Status", "refused_port"]

_HEAD_LIMIT = 256 * 1024


@dataclass(frozen=True)
class Stall:
    """Read the request, never answer."""


@dataclass(frozen=True)
class Drip:
    """Forward the request; send the answer back one byte every ``every`` seconds."""

    every: float = 0.1


@dataclass(frozen=True)
class Reset:
    """Reset the connection (RST) instead of answering."""


@dataclass(frozen=True)
class Status:
    """Answer with this status (and headers, body) without asking the server."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Fault = Stall | Drip | Reset | Status

_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class _Rule:
    fault: Fault | None
    path: str = ""
    times: int | None = None


class FaultProxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        mode: Literal["http", "tcp"] = "http",
        server_tls: ssl.SSLContext | None = None,
        upstream_tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ):
        self.upstream = upstream
        self.mode = mode
        self._server_tls = server_tls
        self._upstream_tls = upstream_tls
        self._host = host
        self._rule = _Rule(None)
        self._cond = threading.Condition()
        self.requests = 0
        self.open_connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> FaultProxy:
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, self._host, 0, ssl=self._server_tls), loop
        ).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._loop = None

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        scheme = "https" if self._server_tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # --- control -------------------------------------------------------------------------
    def set(self, fault: Fault | None, *, path: str = "", times: int | None = None) -> None:
        """Apply ``fault`` to the next requests (to paths starting with ``path``; only
        ``times`` of them, then pass through). ``None`` passes everything through."""
        if self.mode == "tcp" and isinstance(fault, Status):
            raise ValueError("Status faults need mode='http'")
        with self._cond:
            self._rule = _Rule(fault, path, times)

    def wait_requests(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` requests (tcp mode: connections) have arrived."""
        with self._cond:
            return self._cond.wait_for(lambda: self.requests >= count, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no client connection is open (the client hung up on every one)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.open_connections == 0, timeout)

    def _take(self, path: str) -> Fault | None:
        with self._cond:
            self.requests += 1
            self._cond.notify_all()
            rule = self._rule
            if rule.fault is None or not path.startswith(rule.path):
                return None
            if rule.times is not None:
                if rule.times <= 0:
                    return None
                rule.times -= 1
            return rule.fault

    # --- serving -------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._cond:
            self.open_connections += 1
        try:
            if self.mode == "tcp":
                await self._serve_tcp(reader, writer)
            else:
                await self._serve_http(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away: that is often the point
        except asyncio.CancelledError:
            pass  # stop(): ending quietly, not as an error asyncio would log
        finally:
            _close(writer)
            self._tasks.discard(task)
            with self._cond:
                self.open_connections -= 1
                self._cond.notify_all()

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed its keep-alive connection
            if len(head) > _HEAD_LIMIT:
                return
            line, headers = _parse_head(head)
            path = [*line.split(" "), "", ""][1]
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(length) if length else b""
            fault = self._take(path)
            if isinstance(fault, Status):
                writer.write(_canned(fault))
                await writer.drain()
                continue
            if isinstance(fault, Reset):
                _reset(writer)
                return
            if isinstance(fault, Stall):
                await _until_closed(reader)
                return
            answer = await self._forward(_with_close(head) + body)
            await _send(writer, answer, fault.every if isinstance(fault, Drip) else None)
            return

    async def _forward(self, request: bytes) -> bytes:
        up_r, up_w = await asyncio.open_connection(*self.upstream, ssl=self._upstream_tls)
        try:
            up_w.write(request)
            await up_w.drain()
            answer = await up_r.read(-1)
        finally:
            _close(up_w)
        end = answer.find(b"\r\n\r\n")
        if end < 0:
            return answer
        return _with_close(answer[: end + 4]) + answer[end + 4 :]

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fault = self._take("")
        if isinstance(fault, Reset):
            _reset(writer)
            return
        if isinstance(fault, Stall):
            await _until_closed(reader)
            return
        up_r, up_w = await asyncio.open_connection(*self.upstream, ssl=self._upstream_tls)
        every = fault.every if isinstance(fault, Drip) else None
        try:
            await asyncio.gather(_pipe(reader, up_w, None), _pipe(up_r, writer, every))
        finally:
            _close(up_w)


def refused_port() -> int:
    """A loopback port with nothing listening on it (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        name, sep, value = raw.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _with_close(head: bytes) -> bytes:
    """The head with its Connection/Keep-Alive headers replaced by ``Connection: close``."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [
        ln
        for ln in lines[1:]
        if ln and ln.partition(":")[0].strip().lower() not in ("connection", "keep-alive")
    ]
    return "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1")


def _canned(fault: Status) -> bytes:
    reason = _REASONS.get(fault.code, "Fault")
    head = [f"HTTP/1.1 {fault.code} {reason}", f"Content-Length: {len(fault.body)}"]
    head += [f"{k}: {v}" for k, v in fault.headers.items()]
    if fault.body and not any(k.lower() == "content-type" for k in fault.headers):
        head.append("Content-Type: text/plain")
    return ("\r\n".join([*head, "", ""])).encode("latin-1") + fault.body


async def _send(writer: asyncio.StreamWriter, data: bytes, every: float | None) -> None:
    if every is None:
        writer.write(data)
        await writer.drain()
        return
    for i in range(len(data)):
        writer.write(data[i : i + 1])
        await writer.drain()
        if writer.is_closing():
            return
        await asyncio.sleep(every)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, every: float | None) -> None:
    try:
        while data := await src.read(65536):
            await _send(dst, data, every)
    finally:
        _close(dst)


async def _until_closed(reader: asyncio.StreamReader) -> None:
    """Hold the connection until the client closes it (or the proxy stops)."""
    while await reader.read(65536):
        pass


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
