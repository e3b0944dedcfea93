"""One daemon per store: two senders on one outbox would race each other's alerts.

On SQLite the store is a local file, so an exclusive ``flock`` on a lock file beside it is
exact: the kernel drops it when the process dies, however it dies (kill -9 included), so a
crashed daemon never leaves a stale lock behind. PostgreSQL stores are shared over the
network and need a lease in the database itself; that belongs to the standby work.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from syncd.errors import ConfigError


def sqlite_path(url: str) -> Path | None:
    """The database file of a resolved ``sqlite:///`` URL; None for other stores or memory."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


class StoreLock:
    """Held for as long as ``syncd run`` or ``syncd once`` may send from this store."""

    def __init__(self, db_file: Path):
        self.path = db_file.with_name(db_file.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"{self.path}: another syncd is already running on this store; "
                "stop it first (two would send every alert twice)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()
