"""The fast lane's reading of one plain VEVENT block into a :class:`Simple` entry.

Only the properties syncd uses are read, and only in the shapes icalendar reads the same
way; anything else raises :class:`~syncd.parse.lines.Bail` so the full path takes the entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, weekday, weekdays
from icalendar.parser import split_on_unescaped_comma
from icalendar.prop import vDuration

from syncd.domain.model import organizer_address
from syncd.parse.lines import LINE, Bail, read_params, read_when, split_line, unescape

_SINGLE = (
    "UID",
    "DTSTART",
    "DTEND",
    "DURATION",
    "SUMMARY",
    "LOCATION",
    "DESCRIPTION",
    "STATUS",
    "ORGANIZER",
)
_UNSUPPORTED = frozenset({"RDATE", "EXRULE", "RECURRENCE-ID"})
_NESTING = frozenset({"BEGIN", "END"})
_READ = frozenset({*_SINGLE, *_UNSUPPORTED, "RRULE", "EXDATE", "CATEGORIES"})
_FREQS = {"DAILY": DAILY, "WEEKLY": WEEKLY, "MONTHLY": MONTHLY, "YEARLY": YEARLY}
_DAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_BYDAY = re.compile(r"([+-]?)([1-4]?)(MO|TU|WE|TH|FR|SA|SU)\Z")
_POSITIVE = re.compile(r"[1-9][0-9]{0,5}\Z")
_MONTHDAY = re.compile(r"-?([1-9]|[12][0-9]|3[01])\Z")
_MONTH = re.compile(r"([1-9]|1[0-2])\Z")


@dataclass(frozen=True, slots=True)
class Rule:
    """An RRULE whose every shape dateutil expands without an endless search.

    Only FREQ DAILY..YEARLY with INTERVAL, COUNT, UNTIL, WKST, BYDAY (ordinals 1-4, never
    with BYMONTHDAY), BYMONTHDAY (at most 28 when BYMONTH narrows it) and BYMONTH (YEARLY):
    every such rule matches a day within a few years, so no rule here can make dateutil
    walk to the year 9999 or trip the full path's "never matches" check.
    """

    freq: int
    interval: int
    count: int | None
    until: date | datetime | None
    """As written: a date, a floating date-time, or a UTC date-time."""
    byweekday: tuple[weekday, ...] | None
    bymonthday: tuple[int, ...] | None
    bymonth: tuple[int, ...] | None
    wkst: int | None


@dataclass(frozen=True, slots=True)
class Simple:
    """One plain entry. Times are as written: naive wall time plus ``tzid``, or UTC."""

    uid: str
    start: date | datetime
    end: date | datetime | None
    """As recurring-ical-events computes it (DTEND, DTSTART+DURATION, or DTSTART[+1 day])."""
    has_end: bool
    start_tzid: str | None
    end_tzid: str | None
    summary: str
    location: str
    description: str
    categories: tuple[str, ...]
    status: str
    rule: Rule | None = None
    exdates: tuple[tuple[date | datetime, str | None], ...] = ()
    """EXDATE values as written, each with its TZID."""
    lines: list[str] = field(default_factory=list)
    """The entry's own lines, kept for a series so the full path can still take it."""
    organizer: str = ""


def read_event(block: list[str]) -> Simple:
    seen: dict[str, tuple[str, str]] = {}
    categories: list[str] = []
    exdates: list[tuple[str, str]] = []
    depth = 0
    for line in block[1:-1]:
        m = LINE(line)  # inlined split_line: this loop is most of the fast lane's time
        if m is None:
            if depth:
                continue  # VALARM and friends
            name, params, value = split_line(line)
        else:
            name = m[1].upper()
            if name in _NESTING and m.end() == len(name) + 1:  # exactly "BEGIN:" / "END:"
                depth += 1 if name == "BEGIN" else -1
                continue
            if depth or name not in _READ:
                continue
            params, value = m[2] or "", line[m.end() :]
        if name in _UNSUPPORTED:
            raise Bail
        if name == "CATEGORIES":
            categories.append(value)
        elif name == "EXDATE":
            exdates.append((params, value))
        elif name in _SINGLE or name == "RRULE":
            if name in seen:
                raise Bail
            seen[name] = (params, value)
    if "UID" not in seen or "DTSTART" not in seen:
        raise Bail
    uid = unescape(seen["UID"][1]).strip()
    if not uid:
        raise Bail
    start, start_tzid = read_when(seen["DTSTART"][1], read_params(seen["DTSTART"][0]))
    end: date | datetime | None = None
    end_tzid: str | None = None
    if "DTEND" in seen:
        if "DURATION" in seen:
            raise Bail
        end, end_tzid = read_when(seen["DTEND"][1], read_params(seen["DTEND"][0]))
        if isinstance(end, datetime) != isinstance(start, datetime):
            raise Bail
    elif "DURATION" in seen:
        try:
            duration = vDuration.from_ical(seen["DURATION"][1].strip())  # type: ignore[no-untyped-call]
        except (ValueError, TypeError):
            raise Bail from None
        if not isinstance(duration, timedelta) or (
            not isinstance(start, datetime) and duration.seconds
        ):
            raise Bail
        end, end_tzid = start + duration, start_tzid
    rule: Rule | None = None
    if "RRULE" in seen:
        if seen["RRULE"][0]:
            raise Bail
        rule = _rule(seen["RRULE"][1])
    elif exdates:
        raise Bail  # EXDATE without a rule: a one-entry "series" the full path handles
    cats: list[str] = []
    for raw in categories:
        parts = raw.split(",") if "\\" not in raw else split_on_unescaped_comma(raw)
        for part in parts:
            cats.extend(p.strip() for p in part.split(","))
    return Simple(
        uid=uid,
        start=start,
        end=end,
        has_end=end is not None,
        start_tzid=start_tzid,
        end_tzid=end_tzid,
        summary=unescape(seen.get("SUMMARY", ("", ""))[1]),
        location=unescape(seen.get("LOCATION", ("", ""))[1]),
        description=unescape(seen.get("DESCRIPTION", ("", ""))[1]),
        categories=tuple(c for c in cats if c),
        status=unescape(seen.get("STATUS", ("", ""))[1]).strip().upper(),
        rule=rule,
        exdates=tuple(
            _exdate(params, value) for params, value in exdates for value in value.split(",")
        ),
        lines=block if rule is not None else [],
        organizer=_organizer(seen["ORGANIZER"]) if "ORGANIZER" in seen else "",
    )


def _organizer(prop: tuple[str, str]) -> str:
    params, value = prop
    if "VALUE" in params.upper():
        raise Bail  # ORGANIZER;VALUE=DATE: icalendar reads another type; the full path decides
    return organizer_address(unescape(value))


def _exdate(raw: str, value: str) -> tuple[date | datetime, str | None]:
    if not value or value != value.strip():
        raise Bail  # icalendar refuses "a, b" in a list where it strips a single value
    return read_when(value, read_params(raw))


@lru_cache(maxsize=1024)
def _rule(value: str) -> Rule:
    """The RRULE ``value``, if it is one of the shapes :class:`Rule` allows."""
    parts: dict[str, str] = {}
    if value != value.strip():
        raise Bail
    for part in value.split(";"):
        key, eq, val = part.partition("=")
        if not eq or key in parts or key != key.strip().upper() or val != val.strip().upper():
            raise Bail
        parts[key] = val
    freq = _FREQS.get(parts.pop("FREQ", ""))
    if freq is None:
        raise Bail
    interval = _positive(parts.pop("INTERVAL", "1"))
    count = _positive(parts.pop("COUNT")) if "COUNT" in parts else None
    until: date | datetime | None = None
    if "UNTIL" in parts:
        if count is not None:
            raise Bail
        until, _ = read_when(parts.pop("UNTIL"), {})
    wkst = _DAYS[parts.pop("WKST")] if parts.get("WKST") in _DAYS else None
    byweekday = bymonthday = bymonth = None
    ordinal = False
    if "BYDAY" in parts:
        days: list[weekday] = []
        for item in parts.pop("BYDAY").split(","):
            m = _BYDAY.match(item)
            if m is None or (m.group(1) and not m.group(2)):
                raise Bail
            n = int(m.group(1) + m.group(2)) if m.group(2) else None
            ordinal = ordinal or n is not None
            days.append(weekdays[_DAYS[m.group(3)]](n))  # type: ignore[arg-type]
        byweekday = tuple(days)
    if "BYMONTH" in parts:
        if freq != YEARLY:
            raise Bail
        bymonth = tuple(_int(v, _MONTH) for v in parts.pop("BYMONTH").split(","))
    if "BYMONTHDAY" in parts:
        if ordinal or freq not in (MONTHLY, YEARLY):
            raise Bail
        bymonthday = tuple(_int(v, _MONTHDAY) for v in parts.pop("BYMONTHDAY").split(","))
        if (bymonth is not None or interval > 1) and any(abs(d) > 28 for d in bymonthday):
            # The 30th of February, or the 31st of every other month from February:
            # dateutil would search to the year 9999.
            raise Bail
    if parts:
        raise Bail  # BYSETPOS, BYYEARDAY, BYHOUR, WKST=?? ...: the full path
    return Rule(freq, interval, count, until, byweekday, bymonthday, bymonth, wkst)


def _positive(value: str) -> int:
    return _int(value, _POSITIVE)


def _int(value: str, pattern: re.Pattern[str]) -> int:
    if pattern.match(value) is None:
        raise Bail
    return int(value)
