"""iCalendar text -> expanded :class:`~syncd.domain.model.Occurrence` objects over a window.

Pure: no I/O, no clock. The entry point: decode and bound the text, send the plain entries
down the fast lane (:mod:`syncd.parse.fast`, :mod:`syncd.parse.lane`) and everything else
down the full icalendar path (:mod:`syncd.parse.full`). Both lanes give identical results.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from syncd.domain.model import Problem, Window
from syncd.errors import InputError
from syncd.parse.decode import decode
from syncd.parse.fast import scan
from syncd.parse.full import parse_full
from syncd.parse.lane import fast_lane
from syncd.parse.limits import DEFAULT_LIMITS, Limits, ParseResult

_BEGIN = re.compile(r"^[ \t]*BEGIN[ \t]*:", re.IGNORECASE | re.MULTILINE)


def parse_ical(
    data: str | bytes,
    *,
    window: Window,
    tz: ZoneInfo,
    limits: Limits = DEFAULT_LIMITS,
) -> ParseResult:
    """Expand every VEVENT of ``data`` that overlaps ``window``.

    Raises :class:`syncd.errors.InputError` when the text is not iCalendar at all, or is
    larger than ``limits`` allow as a whole. Anything wrong with one entry is reported as
    a :class:`Problem` instead, and the rest of the calendar is still read.
    """
    text = decode(data, limits)
    head = text.lstrip()[:15].upper()
    if not head.startswith("BEGIN:VCALENDAR"):
        raise InputError("not an iCalendar file: it does not start with BEGIN:VCALENDAR")
    # Every component costs at least "BEGIN:X\nEND:X\n"; short texts cannot exceed the limit.
    n_components = len(_BEGIN.findall(text)) if len(text) > 12 * limits.max_components else 0
    if n_components > limits.max_components:
        raise InputError(
            f"too many entries: {n_components} components, the limit is {limits.max_components}"
        )
    result = ParseResult()
    fast = scan(text)
    rest: str | None = text
    if fast is not None:
        declined: list[list[str]] = []
        rest = None
        if fast_lane(fast.simple, window, tz, limits, result, declined):
            rest = fast.rest_with(declined)
    if rest is not None:
        parse_full(rest, window, tz, limits, result)
    result.occurrences.sort(key=lambda o: sort_key(o.start, tz))
    return result


def sort_key(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=tz)


__all__ = ["DEFAULT_LIMITS", "Limits", "ParseResult", "Problem", "decode", "parse_ical"]
