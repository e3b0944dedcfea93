"""The event model every source maps into, and the findings the rules produce.

Pure data: no I/O, no clock. Times are timezone-aware ``datetime`` for timed entries and
``date`` for all-day entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

ItemKind = Literal["ical", "occurrence", "problem"]


@dataclass(frozen=True, slots=True)
class RawItem:
    """One stored calendar item as a source delivered it.

    ``kind == "ical"``: ``data`` is an iCalendar text (one CalDAV object resource, or one
    ICS file), expanded later over the checking window.
    ``kind == "occurrence"``: ``data`` is :meth:`Occurrence.to_json` of one already
    expanded occurrence (Exchange CalendarView and Graph calendarView deliver instances).
    ``kind == "problem"``: an entry the source listed but could not read (a bad time, an
    unknown zone, an item Exchange reports as corrupt); ``data`` is :func:`problem_data`
    JSON ``{"uid", "summary", "message"}``. It is shown to the monitor as rule
    ``unreadable-entry`` instead of failing the whole calendar. Its href is the entry's own,
    so a later fix replaces it.
    """

    href: str
    etag: str
    kind: ItemKind
    data: str


def problem_data(uid: str, summary: str, message: str) -> str:
    """The ``data`` of a ``kind == "problem"`` item; ``message`` must hold no personal data."""
    return json.dumps(
        {"uid": uid, "summary": summary[:200], "message": message},
        ensure_ascii=False,
        sort_keys=True,
    )


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a calendar entry, whatever the source.

    ``recurrence_id`` identifies the occurrence inside its series (ISO text of the original
    start), or is empty for a single event.
    ``postal_code`` carries a structured postcode where the source has one (Graph's
    ``location.address.postalCode``); text sources leave it empty.
    ``organizer`` is the organizer's email address, lower-case, without "mailto:"; empty
    when unknown. Nominated colleagues may book visits into a worker's calendar, so the
    monitor may need to know who wrote an entry. Personal data: never log it.
    """

    uid: str
    start: datetime | date
    end: datetime | date | None
    summary: str = ""
    location: str = ""
    description: str = ""
    categories: tuple[str, ...] = ()
    cancelled: bool = False
    recurrence_id: str = ""
    postal_code: str = ""
    organizer: str = ""

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    @property
    def key(self) -> str:
        """Stable identity of this occurrence inside one calendar."""
        return f"{self.uid}|{self.recurrence_id or _iso(self.start)}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "uid": self.uid,
                "start": _iso(self.start),
                "end": _iso(self.end) if self.end is not None else None,
                "summary": self.summary,
                "location": self.location,
                "description": self.description,
                "categories": list(self.categories),
                "cancelled": self.cancelled,
                "recurrence_id": self.recurrence_id,
                "postal_code": self.postal_code,
                "organizer": self.organizer,
            },
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Occurrence:
        d: dict[str, Any] = json.loads(text)
        end = d.get("end")
        return cls(
            uid=str(d["uid"]),
            start=_parse_iso(str(d["start"])),
            end=_parse_iso(str(end)) if end else None,
            summary=str(d.get("summary") or ""),
            location=str(d.get("location") or ""),
            description=str(d.get("description") or ""),
            categories=tuple(str(c) for c in d.get("categories") or ()),
            cancelled=bool(d.get("cancelled")),
            recurrence_id=str(d.get("recurrence_id") or ""),
            postal_code=str(d.get("postal_code") or ""),
            # JSON stored before the organizer was kept has no key.
            organizer=str(d.get("organizer") or ""),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule broken by one visit occurrence.

    ``calendar`` is the checked calendar's identity (a file path for ``syncd check``, the
    configured staff id in the daemon). ``message`` is safe to show the monitor, not to log.
    """

    rule: str
    calendar: str
    uid: str
    occurrence_key: str
    summary: str
    start: datetime | date
    message: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.calendar}|{self.occurrence_key}|{self.rule}"


def organizer_address(value: str) -> str:
    """An organizer as :attr:`Occurrence.organizer` keeps it: "MAILTO:A@B" -> "a@b"."""
    text = value.strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].strip()
    return text.lower()


def _iso(value: datetime | date) -> str:
    return value.isoformat()


def _parse_iso(text: str) -> datetime | date:
    if "T" in text:
        return datetime.fromisoformat(text)
    return date.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Window:
    """The span of time being checked; ``end`` exclusive. Both timezone-aware."""

    start: datetime
    end: datetime


@dataclass(slots=True)
class ChangeSet:
    full: bool
    upserts: list[RawItem] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    state: str | None = None
    requests: int = 0
    """How many requests to the server this sync cost (for metrics and the bench)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """An entry that could not be read fully. Shown to the monitor as rule ``unreadable-entry``."""

    uid: str
    summary: str
    message: str
