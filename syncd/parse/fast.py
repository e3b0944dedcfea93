"""A fast lane through iCalendar text for the common entry, checked against icalendar.

icalendar parses every property of every line into objects (about 4,000 entries a second
here); the throughput target is 20,000 parsed *and* checked. Most entries are one plain
VEVENT: one UID, a handful of simple lines, at most one plain repetition rule with
EXDATEs. For exactly those this module reads the few properties syncd uses, with
icalendar's own unfolding and unescaping, and hands back everything else (overrides,
RDATE, shared UIDs, rule parts it does not expect, quoting it does not expect, custom
zones, anything odd) as iCalendar text for the full icalendar + recurring-ical-events
path. ``tests/test_ical.py`` and ``tests/test_ical_fast_series.py`` prove both lanes give
identical occurrences.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, weekday, weekdays
from icalendar.parser import split_on_unescaped_comma, unescape_backslash
from icalendar.parser.content_line import UFOLD
from icalendar.prop import vDuration

from syncd.domain.model import organizer_address
from syncd.parse.timezones import resolve_tzid

UTC = ZoneInfo("UTC")

_NAME = re.compile(r"[A-Za-z0-9-]+\Z")
# NAME[;params]: with no quote, backslash or caret before the first colon, which is then
# the separator: exactly the lines _split reads without looking further.
_LINE = re.compile(r'([A-Za-z0-9-]+)(?:;([^:"\\^]*))?:').match
_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?\Z")
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


@dataclass(slots=True)
class Scan:
    simple: list[Simple]
    head: list[str]
    zones: list[str]
    blocks: list[list[str]]
    """Entries the fast lane left alone."""

    @property
    def rest(self) -> str | None:
        """A calendar holding every entry the fast lane left alone, or None if there is none."""
        return self.rest_with([])

    def rest_with(self, more: list[list[str]]) -> str | None:
        blocks = self.blocks + more
        if not blocks:
            return None
        return "\r\n".join(
            [
                "BEGIN:VCALENDAR",
                *self.head,
                *self.zones,
                *(line for b in blocks for line in b),
                "END:VCALENDAR",
                "",
            ]
        )


class _Bail(Exception):
    pass


def scan(text: str) -> Scan | None:
    """Split ``text`` into plain entries and the rest; None if the whole needs icalendar."""
    if "\n " in text or "\n\t" in text:
        text = UFOLD.sub("", text)
    text = _drop_known_zone(text)
    # Same split as icalendar's NEWLINE (\r?\n), with str methods: this runs per object.
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0].strip().upper() != "BEGIN:VCALENDAR":
        return None
    if lines[-1].strip().upper() != "END:VCALENDAR":
        return None
    head: list[str] = []
    zones: list[str] = []
    events: list[list[str]] = []
    block: list[str] = []
    kind = ""
    depth = 0
    for line in lines[1:-1]:
        c = line[:1]
        if c in "Bb" and line[:6].upper() == "BEGIN:":
            if depth == 0:
                kind = line[6:].strip().upper()
                block = []
            elif kind == "VEVENT" and line[6:].strip().upper() == "VEVENT":
                return None  # nested entries: the full path reports them
            depth += 1
            block.append(line)
            continue
        if c in "Ee" and line[:4].upper() == "END:":
            depth -= 1
            if depth < 0:
                return None
            block.append(line)
            if depth == 0:
                if kind == "VEVENT":
                    events.append(block)
                elif kind == "VTIMEZONE" and _needs_definition(block):
                    zones.extend(block)
            continue
        if c in "BbEe" and line[:5].upper().startswith(("BEGIN", "END")):
            return None  # "BEGIN;X=1:VALARM": icalendar nests on it, the line test above does not
        if depth:
            block.append(line)
        elif line[:13].upper() == "X-WR-TIMEZONE":
            return None  # a Google zone the full path converts (x-wr-timezone)
        else:
            head.append(line)
    if depth:
        return None
    simple: list[Simple] = []
    rest: list[list[str]] = []
    parsed: list[tuple[list[str], Simple | None]] = []
    uids: dict[str, int] = {}
    for block in events:
        try:
            item = _event(block)
        except _Bail:
            item = None
            # An override (RECURRENCE-ID) or a second copy goes the full path; the entry it
            # shares a UID with must go with it, or the series would be expanded twice.
            for uid in _uids(block):
                uids[uid] = uids.get(uid, 0) + 2
        parsed.append((block, item))
        if item is not None:
            uids[item.uid] = uids.get(item.uid, 0) + 1
    for block, item in parsed:
        if item is not None and uids[item.uid] == 1 and not item.uid.startswith("no-uid-"):
            simple.append(item)
        else:
            rest.append(block)
    return Scan(simple, head, zones, rest)


def _drop_known_zone(text: str) -> str:
    """``text`` without its leading VTIMEZONE if that is one the scan below would drop.

    CalDAV servers repeat the same definition in every object; it is checked once (cached)
    instead of line by line per object. Only a definition before any other component.
    """
    i = text.find("\nBEGIN:VTIMEZONE")
    if i == -1:
        return text
    j = text.find("END:VTIMEZONE", i)
    k = text.find("\n", j)
    if j == -1 or k == -1 or text[: i + 1].upper().count("BEGIN") != 1:
        return text
    if _known_zone(text[i + 1 : k + 1]):
        return text[: i + 1] + text[k + 1 :]
    return text


@lru_cache(maxsize=64)
def _known_zone(block: str) -> bool:
    """Whether ``block`` is one plain VTIMEZONE of a zone known by name (no definition needed)."""
    lines = [line for line in block.replace("\r\n", "\n").split("\n") if line]
    depth = 0
    for n, line in enumerate(lines):
        head = line[:6].upper()
        if head.startswith("BEGIN:"):
            depth += 1
        elif head.startswith("END:"):
            depth -= 1
            if depth == 0 and n != len(lines) - 1:
                return False
        elif head.startswith(("BEGIN", "END")):
            return False
    return (
        depth == 0
        and lines[0] == "BEGIN:VTIMEZONE"
        and lines[-1].rstrip() == "END:VTIMEZONE"
        and not _needs_definition(lines)
    )


def _uids(block: list[str]) -> set[str]:
    """Every value a UID line of ``block`` could be read as (more is only slower)."""
    out: set[str] = set()
    for line in block:
        if line[:4].upper() not in ("UID:", "UID;"):
            continue
        values = [line.partition(":")[2]]
        with contextlib.suppress(_Bail):
            values.append(_split(line)[2])
        out.update(v.strip() for v in values)
        out.update(_text(v).strip() for v in values)
    return out


def _needs_definition(block: list[str]) -> bool:
    """Whether the full path needs this VTIMEZONE: zones we know by name never use it."""
    for line in block:
        if line[:5].upper() == "TZID:" or line[:5].upper() == "TZID;":
            return resolve_tzid(line.partition(":")[2]) is None
    return True


def _split(line: str) -> tuple[str, str, str]:
    m = _LINE(line)
    if m is not None:  # the usual line; anything else takes the careful way below
        name, params = m.groups()
        return name.upper(), params or "", line[m.end() :]
    colon = line.find(":")
    if colon <= 0:
        raise _Bail
    head = line[:colon]
    if '"' in head:
        colon = _separator(line)
        head = line[:colon]
    if "\\" in head or "^" in head:
        raise _Bail
    semi = head.find(";")
    name = head if semi == -1 else head[:semi]
    if not _NAME.match(name):
        raise _Bail
    return name.upper(), ("" if semi == -1 else head[semi + 1 :]), line[colon + 1 :]


def _separator(line: str) -> int:
    quoted = False
    for k, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == ":" and not quoted:
            return k
    raise _Bail


def _params(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if not raw:
        return out
    if raw.count('"') % 2 or (";" in raw and '"' in raw):
        raise _Bail
    for part in raw.split(";"):
        key, eq, value = part.partition("=")
        if not eq:
            raise _Bail
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
        elif "," in value or '"' in value:
            raise _Bail
        out[key.strip().upper()] = value
    return out


def _when(value: str, params: dict[str, str]) -> tuple[date | datetime, str | None]:
    kind = params.get("VALUE", "").upper()
    m = _STAMP.match(value.strip())
    if m is None or kind not in ("", "DATE", "DATE-TIME"):
        raise _Bail
    tzid = params.get("TZID")
    y, mo, d, hh, mi, ss, z = m.groups()
    try:
        if hh is None:
            if tzid is not None or kind == "DATE-TIME":
                raise _Bail  # a date with a zone becomes a datetime in icalendar
            return date(int(y), int(mo), int(d)), None
        dt = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss))
    except ValueError:
        raise _Bail from None
    if tzid is not None:
        if resolve_tzid(tzid) is None:
            raise _Bail  # a custom zone needs the file's VTIMEZONE: full path
        return dt, tzid
    if z:
        return dt.replace(tzinfo=UTC), None
    return dt, None


def _event(block: list[str]) -> Simple:
    seen: dict[str, tuple[str, str]] = {}
    categories: list[str] = []
    exdates: list[tuple[str, str]] = []
    depth = 0
    for line in block[1:-1]:
        m = _LINE(line)  # inlined _split: this loop is most of the fast lane's time
        if m is None:
            if depth:
                continue  # VALARM and friends
            name, params, value = _split(line)
        else:
            name = m[1].upper()
            if name in _NESTING and m.end() == len(name) + 1:  # exactly "BEGIN:" / "END:"
                depth += 1 if name == "BEGIN" else -1
                continue
            if depth or name not in _READ:
                continue
            params, value = m[2] or "", line[m.end() :]
        if name in _UNSUPPORTED:
            raise _Bail
        if name == "CATEGORIES":
            categories.append(value)
        elif name == "EXDATE":
            exdates.append((params, value))
        elif name in _SINGLE or name == "RRULE":
            if name in seen:
                raise _Bail
            seen[name] = (params, value)
    if "UID" not in seen or "DTSTART" not in seen:
        raise _Bail
    uid = _text(seen["UID"][1]).strip()
    if not uid:
        raise _Bail
    start, start_tzid = _when(seen["DTSTART"][1], _params(seen["DTSTART"][0]))
    end: date | datetime | None = None
    end_tzid: str | None = None
    if "DTEND" in seen:
        if "DURATION" in seen:
            raise _Bail
        end, end_tzid = _when(seen["DTEND"][1], _params(seen["DTEND"][0]))
        if isinstance(end, datetime) != isinstance(start, datetime):
            raise _Bail
    elif "DURATION" in seen:
        try:
            duration = vDuration.from_ical(seen["DURATION"][1].strip())  # type: ignore[no-untyped-call]
        except (ValueError, TypeError):
            raise _Bail from None
        if not isinstance(duration, timedelta) or (
            not isinstance(start, datetime) and duration.seconds
        ):
            raise _Bail
        end, end_tzid = start + duration, start_tzid
    rule: Rule | None = None
    if "RRULE" in seen:
        if seen["RRULE"][0]:
            raise _Bail
        rule = _rule(seen["RRULE"][1])
    elif exdates:
        raise _Bail  # EXDATE without a rule: a one-entry "series" the full path handles
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
        summary=_text(seen.get("SUMMARY", ("", ""))[1]),
        location=_text(seen.get("LOCATION", ("", ""))[1]),
        description=_text(seen.get("DESCRIPTION", ("", ""))[1]),
        categories=tuple(c for c in cats if c),
        status=_text(seen.get("STATUS", ("", ""))[1]).strip().upper(),
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
        raise _Bail  # ORGANIZER;VALUE=DATE: icalendar reads another type; the full path decides
    return organizer_address(_text(value))


def _exdate(raw: str, value: str) -> tuple[date | datetime, str | None]:
    if not value or value != value.strip():
        raise _Bail  # icalendar refuses "a, b" in a list where it strips a single value
    return _when(value, _params(raw))


@lru_cache(maxsize=1024)
def _rule(value: str) -> Rule:
    """The RRULE ``value``, if it is one of the shapes :class:`Rule` allows."""
    parts: dict[str, str] = {}
    if value != value.strip():
        raise _Bail
    for part in value.split(";"):
        key, eq, val = part.partition("=")
        if not eq or key in parts or key != key.strip().upper() or val != val.strip().upper():
            raise _Bail
        parts[key] = val
    freq = _FREQS.get(parts.pop("FREQ", ""))
    if freq is None:
        raise _Bail
    interval = _positive(parts.pop("INTERVAL", "1"))
    count = _positive(parts.pop("COUNT")) if "COUNT" in parts else None
    until: date | datetime | None = None
    if "UNTIL" in parts:
        if count is not None:
            raise _Bail
        until, _ = _when(parts.pop("UNTIL"), {})
    wkst = _DAYS[parts.pop("WKST")] if parts.get("WKST") in _DAYS else None
    byweekday = bymonthday = bymonth = None
    ordinal = False
    if "BYDAY" in parts:
        days: list[weekday] = []
        for item in parts.pop("BYDAY").split(","):
            m = _BYDAY.match(item)
            if m is None or (m.group(1) and not m.group(2)):
                raise _Bail
            n = int(m.group(1) + m.group(2)) if m.group(2) else None
            ordinal = ordinal or n is not None
            days.append(weekdays[_DAYS[m.group(3)]](n))  # type: ignore[arg-type]
        byweekday = tuple(days)
    if "BYMONTH" in parts:
        if freq != YEARLY:
            raise _Bail
        bymonth = tuple(_int(v, _MONTH) for v in parts.pop("BYMONTH").split(","))
    if "BYMONTHDAY" in parts:
        if ordinal or freq not in (MONTHLY, YEARLY):
            raise _Bail
        bymonthday = tuple(_int(v, _MONTHDAY) for v in parts.pop("BYMONTHDAY").split(","))
        if (bymonth is not None or interval > 1) and any(abs(d) > 28 for d in bymonthday):
            # The 30th of February, or the 31st of every other month from February:
            # dateutil would search to the year 9999.
            raise _Bail
    if parts:
        raise _Bail  # BYSETPOS, BYYEARDAY, BYHOUR, WKST=?? ...: the full path
    return Rule(freq, interval, count, until, byweekday, bymonthday, bymonth, wkst)


def _positive(value: str) -> int:
    return _int(value, _POSITIVE)


def _int(value: str, pattern: re.Pattern[str]) -> int:
    if pattern.match(value) is None:
        raise _Bail
    return int(value)


def _text(value: str) -> str:
    return unescape_backslash(value) if "\\" in value else value


__all__ = ["Scan", "Simple", "scan"]
