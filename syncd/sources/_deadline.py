"""A wall-clock deadline on every source call, and a way to abort calls from another thread.

A read timeout does not bound a request: a server sending one byte every few seconds
satisfies it for ever. So each sync call runs under a :class:`Deadline` (``deadline_seconds``
of the source's options). When it runs out, or :meth:`Calls.abort` is called from another
thread (the daemon on SIGTERM, the cycle when a calendar's budget is spent), the sockets the
call is using are shut down. That wakes a blocked read at once whichever library holds it;
the call then raises a transient :class:`~syncd.errors.SourceError` saying so.

How a call's sockets are found: the call's thread is marked (:func:`current`), and the HTTP
libraries' connections announce themselves to the marked deadline (:meth:`Deadline.hold`)
when they connect and before each request, through the hooks in :mod:`syncd.sources._watch`.
A socket is shut down only by the deadline that used it last, so a pooled connection that
has passed to another thread's call is not cut by an old one.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field

from syncd.errors import SourceError

__all__ = [
    "DEFAULT_SECONDS",
    "Calls",
    "Deadline",
    "DeadlineCut",
    "clamp",
    "current",
    "deadline_field",
    "hold_current",
    "sleep",
    "spent_or",
    "time_left",
]

Reason = Literal["deadline", "abort"]

DEFAULT_SECONDS = 60.0
"""A default that keeps a small (2-core) install's cycle sane behind a slow server."""


def deadline_field(server: str) -> Any:
    """The ``deadline_seconds`` option, the same in every backend's options model."""
    return Field(
        default=DEFAULT_SECONDS,
        gt=0,
        le=3600,
        description=f"Longest time, in seconds, one sync of a calendar may take against "
        f"{server}: every request, retry and wait together. A server still answering then, "
        "however slowly, is cut off and the sync fails as a transient error.",
    )


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


def time_left(wait: float) -> bool:
    """Whether the current call can still afford to wait ``wait`` seconds and ask again."""
    deadline = current()
    return deadline is None or wait < deadline.remaining()


def spent_or(error: SourceError) -> SourceError:
    """The current call's deadline error if it is spent, else ``error``: a cut socket looks
    like a dropped connection to the library that held it."""
    deadline = current()
    return deadline.error() if deadline is not None and deadline.spent else error


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
    # socket.socket's own shutdown, not SSLSocket's (which would drop its TLS state under a
    # reader in another thread): the kernel ends the connection either way. OSError: already
    # closed, or never connected.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def hold_current(holder: object, sock: Callable[[], Any]) -> None:
    """:meth:`Deadline.hold` on the current call's deadline, if there is one."""
    deadline = current()
    if deadline is not None:
        deadline.hold(holder, sock)
