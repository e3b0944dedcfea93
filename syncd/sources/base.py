"""The small interface every calendar source implements.

A *source* is one configured server or file location (a CalDAV server, an Exchange
server, a Microsoft 365 tenant, a folder of ICS files). Each staff member's calendar is
named inside its source by a *locator*: a collection path or URL for CalDAV, a mailbox
address for Exchange and Graph, a file, folder or URL for ICS.

Contract, shared by every backend and proven by ``tests/test_source_contract.py``:

* ``sync(locator, state, known, window)`` returns a :class:`ChangeSet` relative to
  ``known`` (href -> etag of the items the store already holds for that calendar) and
  ``state`` (the opaque incremental-sync state the source returned last time, or None).
* An item whose etag equals the one in ``known`` need not be returned again.
* ``deletes`` lists hrefs from ``known`` that are gone. Sources that list the whole
  calendar (``full=True``) compute it as ``known - present``.
* If the stored state is no longer valid (expired sync token, 410 Gone), the source starts
  again from scratch by itself and returns ``full=True``.
* Errors are raised as :class:`syncd.errors.SourceError` (``AuthError`` for credentials or
  permissions), never as library exceptions, and their messages hold no personal data.
* Constructors do no I/O; connections are opened lazily and released by ``close()``.

Bounded time (``syncd.sources._deadline``):

* Every call (``sync``, ``sync_many``, Graph's subscription calls) ends within the source's
  ``deadline_seconds``, however slowly the server answers: all its requests, retries and
  waits together. A server still answering then is cut off and the call raises a transient
  ``SourceError`` ("no complete answer within 60 s"). Retries never outlast it.
* ``abort()`` ends every call of this source in flight promptly, from any thread (the daemon
  on SIGTERM, the cycle when a calendar's budget is spent); each raises a transient
  ``SourceError``. ``close()`` aborts too, then releases connections. Neither stops later
  calls, which reconnect as needed: a caller shutting down stops starting them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from syncd.domain.model import ChangeSet, Window
from syncd.errors import SourceError


class SourceOptions(BaseModel):
    """Base for each backend's options table in the config (``[[sources]]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """One calendar's arguments to :meth:`Source.sync`, for :meth:`Source.sync_many`."""

    locator: str
    state: str | None
    known: Mapping[str, str]
    window: Window


class Source(ABC):
    """Base class of every calendar backend. Subclasses set ``kind`` and ``Options``."""

    kind: ClassVar[str]
    Options: ClassVar[type[SourceOptions]] = SourceOptions
    batch_size: ClassVar[int] = 1
    """How many calendars one :meth:`sync_many` call serves at once (Graph's ``$batch``: 20)."""

    def __init__(self, name: str, options: SourceOptions, secret: Callable[[str], str]):
        """``secret(field)`` reads the secret named by that options field, on demand."""
        self.name = name
        self.options = options
        self._secret = secret

    @abstractmethod
    def sync(
        self,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
    ) -> ChangeSet:
        """Bring the caller up to date with one calendar. See the module docstring."""

    def sync_many(self, requests: Sequence[SyncRequest]) -> dict[str, ChangeSet | SourceError]:
        """Sync several calendars; each locator gets its ChangeSet or its own error.

        Backends that can batch (Graph) override this; the default syncs one by one.
        """
        out: dict[str, ChangeSet | SourceError] = {}
        for r in requests:
            try:
                out[r.locator] = self.sync(r.locator, r.state, r.known, r.window)
            except SourceError as exc:
                out[r.locator] = exc
        return out

    def abort(self) -> None:  # noqa: B027 - optional hook
        """End this source's calls in flight promptly; callable from any thread. Each
        raises a transient SourceError. Sources without network I/O do nothing."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Abort calls in flight (see :meth:`abort`) and release connections. Safe to call
        more than once, and from another thread."""


__all__ = ["ChangeSet", "Source", "SourceOptions", "SyncRequest", "Window"]
