"""One sender per store: two daemons on one outbox would race each other's alerts.

:class:`SenderLock` is the interface (``try_acquire``, ``held``, ``release``); the daemon sends
only while ``held()``. Two kinds:

* SQLite (:class:`StoreLock`): the store is a local file, so an exclusive ``flock`` on a lock
  file beside it is exact. The kernel drops it when the process dies, however it dies (kill -9
  included), so a crashed daemon never leaves a stale lock. A second daemon is refused: it
  could only ever run on the same machine, so there is nothing to stand by for.
* PostgreSQL (:class:`PgAdvisoryLock`): a session advisory lock, held on a connection of its
  own for as long as the daemon is the active one. The server drops it when that session ends
  (the process died, or its connection broke), and a standby daemon polling
  ``pg_try_advisory_lock`` takes over. ``held()`` asks the server, so an active daemon whose
  session was lost stops sending rather than sending beside its successor.

The lock is taken before any cycle and checked before each; a hand-over can still repeat the
messages the old daemon sent but had not yet marked sent: at least once, with the same
Message-ID (see the README).
"""

from __future__ import annotations

import abc
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from syncd.errors import ConfigError

log = logging.getLogger(__name__)

STANDBY_RETRY = 5.0
"""Seconds between a standby's attempts to take the lock."""


class SenderLock(abc.ABC):
    """Held for as long as ``syncd run`` or ``syncd once`` may send from this store."""

    standby: bool = False
    """True if a daemon that cannot take the lock may wait for it (rather than be refused)."""

    @abc.abstractmethod
    def try_acquire(self) -> bool:
        """Take the lock if it is free; True if this process holds it now."""

    @abc.abstractmethod
    def held(self) -> bool:
        """True while this process still holds the lock."""

    @abc.abstractmethod
    def release(self) -> None: ...

    @abc.abstractmethod
    def busy(self) -> str:
        """The line saying another daemon holds the lock."""

    def acquire(self) -> None:
        """Take the lock or raise :class:`ConfigError` (for commands that must not wait)."""
        if not self.try_acquire():
            raise ConfigError(self.busy())

    def __enter__(self) -> SenderLock:
        self.acquire()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()


def sqlite_path(url: str) -> Path | None:
    """The database file of a resolved ``sqlite:///`` URL; None for other stores or memory."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def sender_lock(url: str) -> SenderLock | None:
    """The lock for the store at the resolved URL ``url``; None for an in-memory store."""
    if url.startswith("postgresql"):
        return PgAdvisoryLock(url)
    path = sqlite_path(url)
    return StoreLock(path) if path is not None else None


class StoreLock(SenderLock):
    """The SQLite store's lock: ``flock`` on ``<db>.lock``."""

    def __init__(self, db_file: Path):
        self.path = db_file.with_name(db_file.name + ".lock")
        self._fd: int | None = None

    def busy(self) -> str:
        return (
            f"{self.path}: another syncd is already running on this store; "
            "stop it first (two would send every alert twice)"
        )

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


_NAMESPACE = 0x73796E63  # "sync": the first of the two int4 advisory-lock keys
_CONNECT_ARGS = {
    "connect_timeout": 10,
    # A server that vanishes without a reset must not leave held() hanging: the kernel
    # gives up on unacknowledged data after 10 s, keepalives notice a silent peer.
    "tcp_user_timeout": 10_000,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "application_name": "syncd sender lock",
}


def store_key(schema: str) -> int:
    """The second lock key: the store's schema. Advisory locks are per database already,
    so two stores in one database (in two schemas) get two locks."""
    digest = hashlib.blake2b(f"syncd sender:{schema}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


class PgAdvisoryLock(SenderLock):
    """The PostgreSQL store's lock: a session advisory lock on a connection of its own."""

    standby = True

    def __init__(self, url: str):
        self.url = url
        self._engine: Any = None
        self._conn: Any = None
        self._key: int | None = None
        self._unreachable = False

    def busy(self) -> str:
        return (
            "another syncd is already running on this PostgreSQL store; "
            "stop it first (two would send every alert twice)"
        )

    def try_acquire(self) -> bool:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        if self.held():
            return True
        try:
            conn = self._conn = self._connect()
            self._key = store_key(conn.execute(text("SELECT current_schema()")).scalar_one())
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:ns, :key)"), {"ns": _NAMESPACE, "key": self._key}
            ).scalar_one()
        except SQLAlchemyError as exc:
            if not self._unreachable:  # once, not at every retry
                log.warning(
                    "cannot reach the store to take the sender lock (%s); retrying",
                    type(exc).__name__,
                )
            self._unreachable = True
            self._drop()
            return False
        self._unreachable = False
        if not got:
            self._drop()  # no idle session left behind while standing by
        return bool(got)

    def held(self) -> bool:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        if self._conn is None:
            return False
        try:
            mine = self._conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND granted AND classid = :ns "
                    "AND objid = :key AND objsubid = 2)"
                ),
                {"ns": _NAMESPACE, "key": self._key},
            ).scalar_one()
        except SQLAlchemyError:
            mine = False
        if not mine:
            self._drop()
        return bool(mine)

    def release(self) -> None:
        self._drop()  # ending the session releases the lock

    def _connect(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self._engine = create_engine(
            self.url, poolclass=NullPool, hide_parameters=True, connect_args=_CONNECT_ARGS
        )
        return self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _drop(self) -> None:
        conn, engine = self._conn, self._engine
        self._conn = self._engine = None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken session: closing it is all that was left to do
                log.debug("closing the lock connection", exc_info=True)
        if engine is not None:
            engine.dispose()


def stand_by(
    lock: SenderLock,
    stop: threading.Event,
    ping: Callable[[], None],
    retry: float = STANDBY_RETRY,
) -> bool:
    """Wait until ``lock`` is taken (True) or ``stop`` is set (False), calling ``ping`` (the
    watchdog) at every try. Says once, at INFO, that this daemon is standing by."""
    if lock.try_acquire():
        return True
    log.info("standby: another syncd is active on this store; taking over when it stops")
    while not stop.wait(retry):
        ping()
        if lock.try_acquire():
            log.info("standby over: this syncd is now the active one")
            return True
    return False
