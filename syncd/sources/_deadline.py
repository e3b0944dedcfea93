"""A wall-clock deadline on every source call, and a way to abort calls from another thread.

A read timeout does not bound a request: a server sending one byte every few seconds
satisfies it for ever. So each sync call runs under a :class:`Deadline` (``deadline_seconds``
of the source's options). When it runs out, or :meth:`Calls.abort` is called from another
thread (the daemon on SIGTERM, the cycle when a calendar's budget is spent), the sockets the
call is using are shut down. That wakes a blocked read at once whichever library holds it;
the call then raises a transient :class:`~syncd.errors.SourceError` saying so.

How a call's sockets are found: the call's thread is marked (:func:`current`), and the HTTP
libraries' connections announce themselves to the marked deadline when they connect and
before each request, through hooks made here:

* requests and niquests (urllib3 and urllib3-future): :func:`watch_pools` puts in connection
  classes that do so;
* httpx: :class:`WatchedBackend`, an httpcore network backend whose streams do so, and whose
  reads also wait no longer than the time left.

A socket is shut down only by the deadline that used it last, so a pooled connection that
has passed to another thread's call is not cut by an old one. Not covered: a TLS handshake
in progress (the socket is being wrapped), which only its read timeout bounds.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import httpcore

from syncd.errors import SourceError

__all__ = [
    "Calls",
    "Deadline",
    "DeadlineCut",
    "WatchedBackend",
    "clamp",
    "current",
    "sleep",
    "watch_pools",
]

Reason = Literal["deadline", "abort"]


class DeadlineCut(ConnectionAbortedError):
    """Raised inside an HTTP library when a request starts after its call was cut. An
    OSError, so libraries treat it like a dropped connection; :meth:`Calls.call` turns it
    (and whatever a library made of it) into a SourceError."""


class Deadline:
    """One call's wall-clock limit. Thread-safe; :meth:`cut` may come from any thread."""

    def __init__(self, name: str, seconds: float):
        self.name = name
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.reason: Reason | None = None
        self.finished = False
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._held: dict[int, tuple[object, Callable[[], Any]]] = {}

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    @property
    def spent(self) -> bool:
        """Cut, or out of time (a clamped read can time out just before the watchdog)."""
        return self.reason is not None or self.remaining() <= 0

    def hold(self, holder: object, sock: Callable[[], Any]) -> None:
        """``holder`` (a connection, a stream) is about to do I/O for this call; ``sock()``
        gives its current socket. Raises :class:`DeadlineCut` if the call is already cut."""
        with self._lock:
            if self.reason is None and self.remaining() <= 0:
                self.reason = "deadline"
            if self.reason is None:
                self._held[id(holder)] = (holder, sock)
                with _OWNERS_LOCK:
                    _OWNERS[holder] = self
                return
        _shut(sock())
        raise DeadlineCut(f"{self.name}: call cut ({self.reason})")

    def cut(self, reason: Reason) -> None:
        """End the call now: shut down every socket it is using. Idempotent."""
        with self._lock:
            if self.reason is not None or self.finished:
                return
            self.reason = reason
            held = list(self._held.values())
        self._cut.set()
        for holder, sock in held:
            with _OWNERS_LOCK:
                mine = _OWNERS.get(holder) is self
            if mine:
                _shut(sock())

    def sleep(self, seconds: float) -> None:
        """Wait, but wake (with :class:`DeadlineCut`) when the call is cut."""
        if self._cut.wait(max(0.0, seconds)) or self.reason is not None:
            raise DeadlineCut(f"{self.name}: call cut ({self.reason})")

    def error(self) -> SourceError:
        if self.reason == "abort":
            return SourceError(f"{self.name}: request aborted before the server answered")
        return SourceError(f"{self.name}: no complete answer within {self.seconds:g} s")

    def _finish(self) -> None:
        with self._lock:
            self.finished = True
            self._held.clear()


# holder -> the deadline that used it last. Weak: a closed connection drops out by itself.
_OWNERS: weakref.WeakKeyDictionary[object, Deadline] = weakref.WeakKeyDictionary()
_OWNERS_LOCK = threading.Lock()
_local = threading.local()


def current() -> Deadline | None:
    """The deadline of the call running on this thread, if any."""
    deadline: Deadline | None = getattr(_local, "deadline", None)
    return deadline


def clamp(timeout: float | None) -> float | None:
    """``timeout``, but no longer than the current call has left (at least a millisecond)."""
    deadline = current()
    if deadline is None:
        return timeout
    left = max(0.001, deadline.remaining())
    return left if timeout is None else min(timeout, left)


def sleep(seconds: float) -> None:
    """time.sleep that the current call's deadline or abort wakes (then raises)."""
    deadline = current()
    if deadline is None:
        time.sleep(seconds)
    else:
        deadline.sleep(seconds)


class Calls:
    """The calls in flight of one source. Thread-safe; :meth:`abort` from any thread."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._active: set[Deadline] = set()

    @contextmanager
    def call(self, seconds: float) -> Iterator[Deadline]:
        """Run the body under a deadline of ``seconds``. If the deadline runs out or the call
        is aborted, the body's exception (whatever the library made of the cut) becomes a
        transient SourceError saying so. A call nested in another shares its deadline."""
        outer = current()
        if outer is not None:
            yield outer
            return
        deadline = Deadline(self.name, seconds)
        with self._lock:
            self._active.add(deadline)
        _local.deadline = deadline
        _WATCHDOG.add(deadline)
        try:
            yield deadline
        except Exception:
            if deadline.spent:
                raise deadline.error() from None
            raise
        finally:
            _local.deadline = None
            deadline._finish()
            with self._lock:
                self._active.discard(deadline)

    def abort(self) -> None:
        """End every call in flight promptly; each raises SourceError (transient)."""
        with self._lock:
            active = list(self._active)
        for deadline in active:
            deadline.cut("abort")


class _Watchdog:
    """One thread for the whole process, cutting each deadline when it runs out."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.expires, next(self._seq), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="syncd-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].finished:
                        heapq.heappop(self._heap)
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    if wait is not None and wait <= 0:
                        due = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(wait)
            due.cut("deadline")


_WATCHDOG = _Watchdog()


def _shut(sock: Any) -> None:
    """Shut the connection down under whoever is blocked on it (a blocked recv returns)."""
    if not isinstance(sock, socket.socket):
        return
    try:
        # socket.socket's own shutdown, not SSLSocket's (which would drop its TLS state
        # under a reader in another thread): the kernel ends the connection either way.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected


def _hold_current(holder: object, sock: Callable[[], Any]) -> None:
    deadline = current()
    if deadline is not None:
        deadline.hold(holder, sock)


# --- requests / niquests (urllib3) ----------------------------------------------------------


def watch_pools(manager: Any) -> None:
    """Make the connections of a urllib3 PoolManager (or ProxyManager) report to the current
    call's deadline. Works for urllib3 and urllib3-future alike: it subclasses whichever
    pool and connection classes the manager already uses."""
    classes: Mapping[str, type] = manager.pool_classes_by_scheme
    if getattr(classes, "_syncd_watched", False):
        return
    watched = _WatchedClasses({s: _watched_pool(c) for s, c in classes.items()})
    manager.pool_classes_by_scheme = watched


class _WatchedClasses(dict[str, type]):
    _syncd_watched = True


def _watched_pool(pool_cls: type) -> type:
    base: Any = pool_cls.ConnectionCls

    class WatchedConnection(base):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> Any:
            # The connect (and TLS handshake) waits no longer than the call has left.
            if self.timeout is None or isinstance(self.timeout, int | float):
                self.timeout = clamp(self.timeout)
            sock = super()._new_conn()
            _hold_current(self, lambda: sock if self.sock is None else self.sock)
            return sock

        def request(self, *args: Any, **kwargs: Any) -> Any:
            _hold_current(self, lambda: self.sock)
            return super().request(*args, **kwargs)

    return type(f"Watched{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": WatchedConnection})


# --- httpx (httpcore) -----------------------------------------------------------------------


class WatchedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with streams that report to the current call's deadline
    and never wait longer than it has left."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None):
        self._inner = inner if inner is not None else httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, clamp(timeout), local_address, socket_options)
        return _WatchedStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _WatchedStream(self._inner.connect_unix_socket(path, clamp(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        sleep(seconds)


class _WatchedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner
        self._hold()

    def _hold(self) -> None:
        _hold_current(self, lambda: self._inner.get_extra_info("socket"))

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._hold()
        return self._inner.read(max_bytes, clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._hold()
        self._inner.write(buffer, clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._hold()
        return _WatchedStream(self._inner.start_tls(ssl_context, server_hostname, clamp(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
