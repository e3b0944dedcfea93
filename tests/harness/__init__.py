"""Harnesses that put the same calendar entries into every kind of source.

The shared contract suite (``tests/test_source_contract.py``) runs against each harness:
the same entries must give the same findings whatever the backend. A harness owns a
server (or folder) for the duration of a test and knows how to write events into it in
that backend's native format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from syncd.sources.base import Source


@dataclass(frozen=True)
class EventSpec:
    """A calendar entry as a user would type it, independent of any backend.

    ``rrule`` is an RFC 5545 RRULE value ("FREQ=WEEKLY;COUNT=4") or empty;
    ``exdates`` are original starts removed from the series; ``overrides`` map an original
    start to a replacement EventSpec (a RECURRENCE-ID override / Exchange exception).
    ``tzid`` is the zone the user's client wrote: an IANA name or an Outlook Windows name
    such as "GMT Standard Time".
    """

    uid: str
    summary: str
    start: datetime | date
    end: datetime | date | None
    location: str = ""
    description: str = ""
    categories: tuple[str, ...] = ()
    cancelled: bool = False
    rrule: str = ""
    exdates: tuple[datetime, ...] = ()
    overrides: dict[datetime, EventSpec] = field(default_factory=dict)
    tzid: str = "Europe/London"
    postal_code: str = ""
    organizer: str = ""
    """The organizer's email address (a colleague who booked the entry); empty: the owner."""


class Harness(Protocol):
    """What the contract suite needs from a backend under test."""

    kind: str

    def make_calendar(self, name: str) -> str:
        """Create an empty calendar for one staff member; return its locator."""

    def put(self, locator: str, event: EventSpec) -> None:
        """Create or replace an entry (by uid)."""

    def delete(self, locator: str, uid: str) -> None:
        """Remove an entry (by uid)."""

    def source(self) -> Source:
        """A fresh Source instance configured to read this harness's server."""

    def break_auth(self) -> None:
        """Make the next syncs fail authentication (wrong password / revoked consent)."""

    def expire_state(self) -> None:
        """Invalidate every incremental sync state handed out so far, if the backend can."""
