"""Hooks that make HTTP libraries' connections answer to a call's deadline.

See :mod:`syncd.sources._deadline` for why. Each connection calls
:func:`~syncd.sources._deadline.hold_current` when it connects and before each request (or
read), so the call running on that thread can shut its socket down:

* requests and niquests (urllib3 and urllib3-future): :func:`watch_pools` /
  :func:`watch_session` put in subclasses of whichever pool and connection classes the
  library already uses;
* httpx: :func:`watched_transport`, whose httpcore network backend wraps each stream; its
  reads and writes also wait no longer than the call has left.

Not covered: a TLS handshake in progress (the socket is being wrapped), which only its
read timeout bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpcore
import httpx

from syncd.sources._deadline import clamp, hold_current, sleep

__all__ = ["WatchedBackend", "watch_pools", "watch_session", "watched_transport"]


# --- requests / niquests (urllib3) ----------------------------------------------------------


def watch_session(session: Any) -> None:
    """:func:`watch_pools` for every adapter mounted on a requests or niquests Session."""
    for adapter in session.adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        if manager is not None:
            watch_pools(manager)


def watch_pools(manager: Any) -> None:
    """Make the connections of a urllib3 PoolManager (or ProxyManager) report to the current
    call's deadline. Works for urllib3 and urllib3-future alike: it subclasses whichever
    pool and connection classes the manager already uses."""
    classes: Mapping[str, Any] = manager.pool_classes_by_scheme
    manager.pool_classes_by_scheme = {
        scheme: cls if getattr(cls, "_syncd_watched", False) else _watched_pool(cls)
        for scheme, cls in classes.items()
    }


def _watched_pool(pool_cls: Any) -> type:
    base: Any = pool_cls.ConnectionCls

    class WatchedConnection(base):  # type: ignore[misc]
        timeout: Any  # urllib3's, declared for the type checker only
        sock: Any

        def _new_conn(self) -> Any:
            # The connect (and TLS handshake) waits no longer than the call has left.
            if self.timeout is None or isinstance(self.timeout, int | float):
                self.timeout = clamp(self.timeout)
            sock = super()._new_conn()
            hold_current(self, lambda: sock if self.sock is None else self.sock)
            return sock

        def request(self, *args: Any, **kwargs: Any) -> Any:
            hold_current(self, lambda: self.sock)
            return super().request(*args, **kwargs)

    return type(
        f"Watched{pool_cls.__name__}",
        (pool_cls,),
        {"ConnectionCls": WatchedConnection, "_syncd_watched": True},
    )


# --- httpx (httpcore) -----------------------------------------------------------------------


def watched_transport(**kwargs: Any) -> httpx.HTTPTransport:
    """``httpx.HTTPTransport(**kwargs)`` whose connections go through :class:`WatchedBackend`
    (proxy included: give the proxy here, not to the Client, which would mount its own)."""
    transport = httpx.HTTPTransport(**kwargs)
    # httpx exposes no hook for httpcore's network backend; its pool (plain or proxy) is made
    # in the constructor and opens no connection before the first request.
    pool: Any = transport._pool
    pool._network_backend = WatchedBackend(pool._network_backend)
    return transport


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
        hold_current(self, lambda: self._inner.get_extra_info("socket"))

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
