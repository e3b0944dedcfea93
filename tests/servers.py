"""Real CalDAV servers for tests: one per session, many users and calendars inside it.

The launchers live in :mod:`syncd.app.devserver` (the demo needs them from the installed
package). This module adds per-test accounts so that a test breaking its own password
cannot disturb the next test on the shared server.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from syncd.app.devserver import DevServer, start_radicale, start_xandikos


class SharedServer:
    """A session-wide server plus the accounts tests have created on it."""

    def __init__(self, server: DevServer):
        self.server = server
        self._users: dict[str, str] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def kind(self) -> str:
        return self.server.kind

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def storage_dir(self) -> Path:
        return self.server.storage_dir

    def new_user(self, prefix: str = "u") -> tuple[str, str]:
        with self._lock:
            n = next(self._ids)
            user, password = f"{prefix}{n}", f"pw-{prefix}{n}"
            self._users[user] = password
            self.server.set_users(self._users)
        return user, password

    def set_password(self, user: str, password: str) -> None:
        with self._lock:
            self._users[user] = password
            self.server.set_users(self._users)

    def stop(self) -> None:
        self.server.stop()


def radicale(storage_dir: Path) -> SharedServer:
    return SharedServer(start_radicale(storage_dir, {}))


def xandikos(storage_dir: Path) -> SharedServer:
    return SharedServer(start_xandikos(storage_dir, {}))


__all__ = ["SharedServer", "radicale", "start_radicale", "start_xandikos", "xandikos"]
