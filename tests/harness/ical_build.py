"""EventSpec -> iCalendar text, as a CalDAV client or an ICS export would write it.

Shared by every harness that stores iCalendar (memory, CalDAV, ICS). One VCALENDAR per
spec: the master VEVENT, one VEVENT per override (same UID, RECURRENCE-ID), and a
VTIMEZONE for the zone the user's client wrote (Outlook-style Windows names included).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, vCalAddress, vRecur
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from . import EventSpec

# Fixed so that the same spec always gives byte-identical text (and etags stay meaningful).
_DTSTAMP = datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC"))


def iana_name(tzid: str) -> str:
    """The IANA zone for an IANA or Windows zone name."""
    return WINDOWS_TO_OLSON.get(tzid, tzid)


@lru_cache(maxsize=64)
def _vtimezone(tzid: str, first_year: int, last_year: int) -> Timezone:
    # A narrow year range keeps the VTIMEZONE small; Outlook writes only the current rule.
    return Timezone.from_tzinfo(
        ZoneInfo(iana_name(tzid)),
        tzid=tzid,
        first_date=date(first_year, 1, 1),
        last_date=date(last_year, 1, 1),
    )


def _is_utc(tzid: str) -> bool:
    return tzid.upper() in {"UTC", "Z", "ETC/UTC"}


def _add_time(comp: Event, name: str, value: datetime | date, tzid: str) -> None:
    if not isinstance(value, datetime):
        comp.add(name, value)  # all-day: VALUE=DATE
        return
    if value.tzinfo is None:
        raise ValueError("EventSpec datetimes must be timezone-aware")
    if _is_utc(tzid):
        comp.add(name, value.astimezone(ZoneInfo("UTC")))
        return
    wall = value.astimezone(ZoneInfo(iana_name(tzid))).replace(tzinfo=None)
    comp.add(name, wall, parameters={"TZID": tzid})


def _location(spec: EventSpec) -> str:
    # Clients that keep a structured postcode (Graph, Outlook) render it into the display
    # text; a text-only backend therefore carries it inside LOCATION.
    if spec.postal_code and spec.postal_code.upper() not in spec.location.upper():
        return f"{spec.location}, {spec.postal_code}" if spec.location else spec.postal_code
    return spec.location


def _vevent(
    spec: EventSpec, uid: str, tzid: str, recurrence_id: datetime | None, organizer: str = ""
) -> Event:
    ev = Event()
    ev.add("UID", uid)
    ev.add("DTSTAMP", _DTSTAMP)
    if recurrence_id is not None:
        _add_time(ev, "RECURRENCE-ID", recurrence_id, tzid)
    _add_time(ev, "DTSTART", spec.start, tzid)
    if spec.end is not None:
        _add_time(ev, "DTEND", spec.end, tzid)
    ev.add("SUMMARY", spec.summary)
    if organizer:
        # As Outlook and Thunderbird write it: a CN, and the scheme in capitals.
        address = vCalAddress(f"MAILTO:{organizer}")
        address.params["CN"] = organizer.split("@")[0]
        ev.add("ORGANIZER", address)
    location = _location(spec)
    if location:
        ev.add("LOCATION", location)
    if spec.description:
        ev.add("DESCRIPTION", spec.description)
    if spec.categories:
        ev.add("CATEGORIES", list(spec.categories))
    if spec.cancelled:
        ev.add("STATUS", "CANCELLED")
    if recurrence_id is None:
        if spec.rrule:
            ev.add("RRULE", vRecur.from_ical(spec.rrule))
        for ex in spec.exdates:
            _add_time(ev, "EXDATE", ex, tzid)
    return ev


def _years(spec: EventSpec) -> tuple[int, int]:
    starts: list[datetime | date] = [spec.start, *spec.exdates, *spec.overrides]
    starts += [o.start for o in spec.overrides.values()]
    years = [s.year for s in starts]
    return min(years) - 1, max(years) + 3


def spec_to_ical(spec: EventSpec) -> str:
    """The iCalendar text of one entry (a CalDAV object resource / one ICS file)."""
    cal = Calendar()
    cal.add("PRODID", "-//syncd tests//harness//EN")
    cal.add("VERSION", "2.0")
    # Overrides are written in the series' zone, as clients do (an override's own tzid,
    # usually the default, would otherwise add a second VTIMEZONE for the same instant).
    timed = isinstance(spec.start, datetime) or any(
        isinstance(o.start, datetime) for o in spec.overrides.values()
    )
    if timed and not _is_utc(spec.tzid):
        cal.add_component(_vtimezone(spec.tzid, *_years(spec)))
    cal.add_component(_vevent(spec, spec.uid, spec.tzid, None, spec.organizer))
    for original, override in sorted(spec.overrides.items()):
        # One organizer per series, as Exchange and Graph keep it.
        organizer = override.organizer or spec.organizer
        cal.add_component(_vevent(override, spec.uid, spec.tzid, original, organizer))
    return cal.to_ical().decode("utf-8")


def specs_to_ical(specs: list[EventSpec]) -> str:
    """Several entries in one VCALENDAR (an ICS feed / export file)."""
    cal = Calendar()
    cal.add("PRODID", "-//syncd tests//harness//EN")
    cal.add("VERSION", "2.0")
    seen_tz: set[str] = set()
    for spec in specs:
        one = Calendar.from_ical(spec_to_ical(spec))
        for comp in one.subcomponents:
            if comp.name == "VTIMEZONE":
                tzid = str(comp["TZID"])
                if tzid in seen_tz:
                    continue
                seen_tz.add(tzid)
            cal.add_component(comp)
    return cal.to_ical().decode("utf-8")


__all__ = ["iana_name", "spec_to_ical", "specs_to_ical"]
