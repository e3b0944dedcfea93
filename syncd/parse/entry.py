"""One occurrence's fields, as either lane read them -> a domain Occurrence.

Both lanes end here, so the time-zone conversion, the recurrence id text and the field
caps are the same whichever lane read the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from syncd.domain.model import Occurrence, Problem
from syncd.parse.limits import Limits, ParseResult


@dataclass(frozen=True, slots=True)
class Entry:
    """One occurrence's fields, as either lane read them; turned into an Occurrence."""

    uid: str
    start: Any
    end: Any
    has_end: bool
    rid: Any
    summary: str
    location: str
    description: str
    categories: tuple[str, ...]
    status: str
    organizer: str
    reversed: bool = False
    """The end as written is before the start: ``start``/``end`` are recurring-ical-events'
    swapped span, which decided the window; the occurrence keeps the times as written."""

    def occurrence(self, tz: ZoneInfo, limits: Limits, result: ParseResult) -> Occurrence:
        start, end = self.start, self.end if self.has_end else None
        if self.reversed:
            # Reported as written, so rule missing-times ("an end not after the start")
            # fires instead of the entry reading as complete.
            start, end = end, start
        if isinstance(start, datetime):
            start = start.astimezone(tz)
            if isinstance(end, datetime):
                end = end.astimezone(tz)
        rid_text = ""
        rid = self.rid
        if isinstance(rid, datetime) and not isinstance(start, datetime):
            rid_text = rid.date().isoformat()  # Exchange writes all-day ids as midnight
        elif isinstance(rid, datetime):
            rid_text = rid.astimezone(tz).isoformat()
        elif rid is not None:
            rid_text = rid.isoformat()
        return Occurrence(
            uid=self.uid,
            start=start,
            end=end,
            summary=self._cap("SUMMARY", self.summary, limits, result),
            location=self._cap("LOCATION", self.location, limits, result),
            description=self._cap("DESCRIPTION", self.description, limits, result),
            categories=self.categories,
            cancelled=self.status == "CANCELLED",
            recurrence_id=rid_text,
            organizer=self.organizer,
        )

    def _cap(self, name: str, value: str, limits: Limits, result: ParseResult) -> str:
        cap = limits.max_property_chars
        if len(value) <= cap:
            return value
        result.problems.append(
            Problem(
                self.uid,
                self.summary[:200],
                f"{name} is longer than {cap} characters; only the start is checked",
            )
        )
        return value[:cap]
