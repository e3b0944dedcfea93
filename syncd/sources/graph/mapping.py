"""Microsoft Graph ``event`` JSON -> :class:`~syncd.domain.model.Occurrence`.

Pure: no I/O, no clock. Used by :mod:`syncd.sources.graph.source`. Errors are
:class:`syncd.errors.SourceError` with messages that name the field, never its value.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from syncd.domain.model import Occurrence, organizer_address
from syncd.errors import SourceError
from syncd.sources._common import html_to_text

_UTC_NAMES = frozenset({"utc", "etc/utc", "z", "gmt", "etc/gmt", "coordinated universal time"})
_INSTANCE_TYPES = frozenset({"occurrence", "exception"})
# Graph writes 7 fractional digits; older Pythons accept at most 6.
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def zone(name: str) -> tzinfo:
    """The zone for a Graph ``timeZone`` value: an IANA name or a Windows name."""
    key = name.strip()
    if key.lower() in _UTC_NAMES:
        return UTC
    iana = WINDOWS_TO_OLSON.get(key, key)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        # Custom Outlook zones ("tzone://Microsoft/Custom") cannot be resolved offline.
        raise SourceError("Graph event has an unknown time zone", permanent=True) from None


def parse_datetime_tz(value: Any, field: str) -> datetime:
    """A Graph ``dateTimeTimeZone`` ({dateTime, timeZone}) as an aware datetime."""
    if not isinstance(value, dict):
        raise SourceError(f"Graph event has no readable {field}", permanent=True)
    text, tz_name = value.get("dateTime"), value.get("timeZone")
    if not isinstance(text, str) or not isinstance(tz_name, str) or not tz_name:
        raise SourceError(f"Graph event has no readable {field}", permanent=True)
    try:
        naive = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip().rstrip("Z")))
    except ValueError:
        raise SourceError(f"Graph event has an unreadable {field}", permanent=True) from None
    if naive.tzinfo is not None:
        return naive
    # zoneinfo resolves wall times in DST gaps/overlaps with fold=0, as Outlook does.
    return naive.replace(tzinfo=zone(tz_name))


def _parse_offset(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError:
        raise SourceError("Graph event has an unreadable originalStart", permanent=True) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def location_text(location: Any) -> str:
    """displayName plus the structured address parts it does not already contain."""
    if not isinstance(location, dict):
        return ""
    name = _text(location.get("displayName"))
    address = location.get("address")
    parts = [name] if name else []
    if isinstance(address, dict):
        for key in ("street", "city", "state", "postalCode", "countryOrRegion"):
            part = _text(address.get(key))
            # Outlook often copies the whole address into displayName; don't say it twice.
            if part and part.lower() not in name.lower():
                parts.append(part)
    return ", ".join(parts)


def organizer(event: dict[str, Any]) -> str:
    """``organizer.emailAddress.address``, as :attr:`Occurrence.organizer` keeps it."""
    value = event.get("organizer")
    email = value.get("emailAddress") if isinstance(value, dict) else None
    address = email.get("address") if isinstance(email, dict) else None
    return organizer_address(address) if isinstance(address, str) else ""


def postal_code(location: Any) -> str:
    if not isinstance(location, dict):
        return ""
    address = location.get("address")
    return _text(address.get("postalCode")) if isinstance(address, dict) else ""


def body_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    content = body.get("content")
    if not isinstance(content, str):
        return ""
    if str(body.get("contentType", "")).lower() == "html":
        return html_to_text(content)
    return content.replace("\r\n", "\n").strip()


def _all_day_date(value: Any, field: str) -> date:
    # All-day entries are floating: the date is the wall date, whatever the zone label.
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise SourceError(f"Graph event has no readable {field}", permanent=True)
    try:
        return date.fromisoformat(str(value["dateTime"]).strip()[:10])
    except ValueError:
        raise SourceError(f"Graph event has an unreadable {field}", permanent=True) from None


def is_instance(event: dict[str, Any]) -> bool:
    return str(event.get("type", "")) in _INSTANCE_TYPES or bool(event.get("seriesMasterId"))


def to_occurrence(event: dict[str, Any]) -> Occurrence:
    """One Graph calendarView event (single instance, occurrence or exception)."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise SourceError("Graph event has no id", permanent=True)
    start: datetime | date
    end: datetime | date | None
    if event.get("isAllDay"):
        start = _all_day_date(event.get("start"), "start")
        end = _all_day_date(event.get("end"), "end") if event.get("end") else None
    else:
        start = parse_datetime_tz(event.get("start"), "start").astimezone(UTC)
        end = (
            parse_datetime_tz(event.get("end"), "end").astimezone(UTC) if event.get("end") else None
        )
    recurrence_id = ""
    # With ImmutableId the master id is stable across edits, so it names the series.
    uid = event_id
    if is_instance(event):
        uid = str(event.get("seriesMasterId") or event_id)
        original = _parse_offset(event.get("originalStart"))
        # An unmoved occurrence starts at its original start; only exceptions need it.
        recurrence_id = (original.astimezone(UTC) if original else start).isoformat()
    categories = event.get("categories") or []
    if not isinstance(categories, list):
        raise SourceError("Graph event has unreadable categories", permanent=True)
    location = event.get("location")
    if not location and isinstance(event.get("locations"), list) and event["locations"]:
        location = event["locations"][0]
    return Occurrence(
        uid=uid,
        start=start,
        end=end,
        summary=_text(event.get("subject")),
        location=location_text(location),
        description=body_text(event.get("body")),
        categories=tuple(str(c) for c in categories if isinstance(c, str) and c.strip()),
        cancelled=bool(event.get("isCancelled")),
        recurrence_id=recurrence_id,
        postal_code=postal_code(location),
        organizer=organizer(event),
    )


def etag_of(event: dict[str, Any]) -> str | None:
    etag = event.get("@odata.etag") or event.get("changeKey")
    return etag if isinstance(etag, str) and etag else None
