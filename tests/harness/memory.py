"""Harness over the in-memory reference source."""

from __future__ import annotations

from pathlib import Path

from syncd.errors import AuthError
from syncd.sources.base import Source
from syncd.sources.memory import MemorySource

from . import EventSpec
from .ical_build import spec_to_ical


class MemoryHarness:
    kind = "memory"

    def __init__(self, tmp_path: Path | None = None):
        self.server = MemorySource("memory")

    def make_calendar(self, name: str) -> str:
        self.server.calendars.setdefault(name, {})
        return name

    def put(self, locator: str, event: EventSpec) -> None:
        self.server.put(locator, _href(event.uid), spec_to_ical(event))

    def delete(self, locator: str, uid: str) -> None:
        self.server.delete(locator, _href(uid))

    def source(self) -> Source:
        # The in-memory source is its own server: every "instance" reads the same data.
        return self.server

    def break_auth(self) -> None:
        self.server.fail = AuthError("memory: credentials rejected")

    def restore_auth(self) -> None:
        self.server.fail = None

    def expire_state(self) -> None:
        self.server.expire_tokens()

    def close(self) -> None:
        self.server.close()


def _href(uid: str) -> str:
    return f"{uid}.ics"
