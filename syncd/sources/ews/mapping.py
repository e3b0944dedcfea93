"""exchangelib ``CalendarItem`` -> :class:`~syncd.domain.model.RawItem`.

No requests: GetItem has already fetched :data:`FIELDS`. Errors name the field, never its
value.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from syncd.domain.model import Occurrence, RawItem, organizer_address, problem_data
from syncd.sources._common import html_to_text

# Everything the checks need, fetched by GetItem (Body is "complex": FindItem cannot return it).
FIELDS = [
    "uid",
    "subject",
    "start",
    "end",
    "is_all_day",
    "location",
    "body",
    "categories",
    "organizer",
    "is_cancelled",
    "type",
    "original_start",
    "_start_timezone",
    "_end_timezone",
]

# Per-item GetItem errors about the item's own data: that entry becomes an unreadable-entry
# finding. Every other per-item error (access, throttling) still fails the calendar.
ITEM_ERRORS = frozenset(
    {
        "ErrorCorruptData",
        "ErrorItemCorrupt",
        "ErrorItemPropertyRequestFailed",
        "ErrorCalendarInvalidTimeZone",
        "ErrorCalendarInvalidRecurrence",
        "ErrorCalendarInvalidPropertyValue",
    }
)


class Unreadable(ValueError):
    """An item whose data cannot be mapped; the message names the field, never its value."""


def _zone(tz: Any) -> ZoneInfo:
    key = getattr(tz, "key", None)
    return ZoneInfo(key) if isinstance(key, str) and key else ZoneInfo("UTC")


def _plain_date(value: date) -> date:
    return date(value.year, value.month, value.day)


def to_raw(item: Any) -> RawItem:
    if item.start is None or (item.end is None and not item.is_all_day):
        raise Unreadable("the entry's start or finish could not be read")
    tz = _zone(item._start_timezone)
    start: datetime | date
    end: datetime | date | None
    if item.is_all_day and not isinstance(item.start, datetime):
        start = _plain_date(item.start)
        # exchangelib hands back an inclusive last day; iCalendar-style ends are exclusive.
        end = _plain_date(item.end) + timedelta(days=1) if item.end is not None else None
    else:
        start = aware(item.start, tz)
        end = aware(item.end, _zone(item._end_timezone or item._start_timezone))
    recurrence_id = ""
    if item.type in ("Occurrence", "Exception") and item.original_start is not None:
        original = aware(item.original_start, tz)
        recurrence_id = original.date().isoformat() if item.is_all_day else original.isoformat()
    occurrence = Occurrence(
        uid=item.uid or item.id,
        start=start,
        end=end,
        summary=item.subject or "",
        location=item.location or "",
        description=body_text(item.body),
        categories=tuple(str(c) for c in item.categories or ()),
        cancelled=bool(item.is_cancelled),
        recurrence_id=recurrence_id,
        organizer=organizer(item.organizer),
    )
    data = occurrence.to_json()
    href = item.id if not recurrence_id else f"{item.id}#{recurrence_id}"
    # An occurrence's ChangeKey is its series'; the digest keeps a changed expansion from
    # passing for unchanged.
    digest = hashlib.sha256(data.encode()).hexdigest()[:16]
    return RawItem(href=href, etag=f"{item.changekey}:{digest}", kind="occurrence", data=data)


def problem_raw(row: Any, message: str) -> RawItem:
    """An entry Exchange listed but we could not read; its ItemId keeps it replaceable."""
    subject = row.subject if isinstance(row.subject, str) else ""
    data = problem_data(str(row.id), subject.strip(), message)
    digest = hashlib.sha256(data.encode()).hexdigest()[:16]
    return RawItem(
        href=str(row.id), etag=f"problem:{row.changekey}:{digest}", kind="problem", data=data
    )


def organizer(mailbox: Any) -> str:
    address = getattr(mailbox, "email_address", None)
    # RoutingType EX carries an X.500 legacyExchangeDN, not an address: say nothing.
    if not isinstance(address, str) or "@" not in address:
        return ""
    return organizer_address(address)


def body_text(body: Any) -> str:
    if not body:
        return ""
    from exchangelib import HTMLBody

    if isinstance(body, HTMLBody):
        return html_to_text(body)
    return str(body).replace("\r\n", "\n").strip()


def aware(value: datetime, tz: ZoneInfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    plain = datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=value.tzinfo,
        fold=value.fold,
    )
    return plain.astimezone(tz)
