"""The fast lane's driver: plain entries read by ``syncd.parse.fast`` -> occurrences.

Spans and series follow recurring-ical-events' semantics exactly (the differential tests
in tests/test_ical.py and tests/test_ical_fast_series.py hold both lanes equal); a series
this lane cannot expand exactly is handed back for the full path.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from recurring_ical_events.util import time_span_contains_event

from syncd.domain.model import Problem, Window
from syncd.parse.entry import Entry
from syncd.parse.limits import Limits, ParseResult, too_many
from syncd.parse.series import Expansion, Unsupported, expand
from syncd.parse.simple import Simple
from syncd.parse.timezones import resolve_tzid


def fast_lane(
    entries: list[Simple],
    window: Window,
    tz: ZoneInfo,
    limits: Limits,
    result: ParseResult,
    declined: list[list[str]],
) -> bool:
    """Emit the plain entries; False once the whole-calendar limit is reached.

    A series this lane cannot expand exactly as the full path would has its lines added
    to ``declined``, for the full path.
    """
    span_start, span_end = window.start.astimezone(tz), window.end.astimezone(tz)
    for e in entries:
        written = _written(e, tz)
        span = _span(*written)
        reversed_ = written[1] is not None and written[0] > written[1]
        if e.rule is not None:
            try:
                expansion = expand_simple(e, span, span_start, span_end, tz, limits)
            except Exception:  # Unsupported, or anything unforeseen: the full path decides
                declined.append(e.lines)
                continue
            for occ_start, occ_end in expansion.spans:
                if not _fast_emit(
                    e, occ_start, occ_end, occ_start, tz, limits, result, reversed_=reversed_
                ):
                    return False
            if expansion.problem:
                result.problems.append(Problem(e.uid, e.summary[:200], expansion.problem))
            continue
        # Aware date-times need none of make_comparable's conversions (most entries).
        timed = isinstance(span[0], datetime) and isinstance(span[1], datetime)
        if not time_span_contains_event(span_start, span_end, *span, comparable=timed):
            continue
        if not _fast_emit(e, span[0], span[1], None, tz, limits, result, reversed_=reversed_):
            return False
    return True


def simple_span(e: Simple, tz: ZoneInfo) -> tuple[Any, Any]:
    """The entry's span as recurring-ical-events computes it (what decides the window)."""
    return _span(*_written(e, tz))


def _written(e: Simple, tz: ZoneInfo) -> tuple[Any, Any]:
    """Start and end (None if the entry has none) as written, pinned to their zones."""
    start = _pin_simple(e.start, e.start_tzid, tz)
    return start, _pin_simple(e.end, e.end_tzid, tz) if e.end is not None else None


def _span(start: Any, end: Any) -> tuple[Any, Any]:
    # recurring-ical-events' span: no end means the start (timed) or one day (all-day),
    # and an end before the start is swapped.
    if end is None:
        return (start, start + timedelta(days=1) if not isinstance(start, datetime) else start)
    return (start, end) if not start > end else (end, start)


def expand_simple(
    e: Simple,
    span: tuple[Any, Any],
    span_start: datetime,
    span_end: datetime,
    tz: ZoneInfo,
    limits: Limits,
) -> Expansion:
    """The fast lane's expansion of a series; raises when the full path must take it."""
    if e.rule is None:
        raise Unsupported
    return expand(
        e.rule,
        *span,
        [_pin_simple(value, tzid, tz) for value, tzid in e.exdates],
        span_start=span_start,
        span_end=span_end,
        tz=tz,
        max_per_series=limits.max_occurrences_per_series,
        max_rule_steps=limits.max_rule_steps,
    )


def _fast_emit(
    e: Simple,
    start: Any,
    end: Any,
    rid: Any,
    tz: ZoneInfo,
    limits: Limits,
    result: ParseResult,
    *,
    reversed_: bool = False,
) -> bool:
    if len(result.occurrences) >= limits.max_occurrences:
        result.problems.append(too_many(limits))
        return False
    entry = Entry(
        uid=e.uid,
        start=start,
        end=end,
        has_end=e.has_end,
        rid=rid,
        summary=e.summary,
        location=e.location,
        description=e.description,
        categories=e.categories,
        status=e.status,
        organizer=e.organizer,
        reversed=reversed_,
    )
    result.occurrences.append(entry.occurrence(tz, limits, result))
    return True


def _pin_simple(value: date | datetime, tzid: str | None, tz: ZoneInfo) -> date | datetime:
    if not isinstance(value, datetime):
        return value
    if tzid is not None:
        return value.replace(tzinfo=resolve_tzid(tzid))
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)
