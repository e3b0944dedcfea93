"""Expansion of the fast lane's plain repeating entries, step for step as the full path.

The full path (``syncd.parse.full``) costs about a millisecond per series: icalendar parses the
entry, ``guard.bound_rule`` bounds the rule, recurring-ical-events expands it. This module
does the same three steps on values the fast lane already read, with the same library
calls (dateutil's rrule, recurring-ical-events' comparison helpers) in the same order, so
the DST traps come out identical: dateutil repeats the DTSTART's *wall-clock* time in its
own zone, a time in the spring gap keeps fold=0 exactly as there, and every comparison
between a zone-aware occurrence and the window is the same Python comparison as there.
``tests/test_ical_fast_series.py`` checks equality against the full path on generated
series.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule
from dateutil.tz import UTC as DATEUTIL_UTC
from recurring_ical_events.util import (
    compare_greater,
    convert_to_date,
    convert_to_datetime,
    time_span_contains_event,
    to_recurrence_ids,
)

from syncd.parse.simple import Rule

UTC = ZoneInfo("UTC")
# Same margin as the full path's guard (``syncd.parse.guard._RULE_MARGIN``).
RULE_MARGIN = timedelta(days=7)
Day = date | datetime


@dataclass(slots=True)
class Expansion:
    """What the full path would have produced for one series."""

    spans: list[tuple[Day, Day]] = field(default_factory=list)
    """Occurrence (start, end) in the full path's order, at most the per-series cap."""
    problem: str = ""
    """The message of the Problem the full path reports for this series, if any."""


class Unsupported(Exception):
    """A combination the full path treats in a way this module does not reproduce."""


def expand(
    rule: Rule,
    start: Day,
    end: Day,
    exdates: list[Day],
    *,
    span_start: datetime,
    span_end: datetime,
    tz: ZoneInfo,
    max_per_series: int,
    max_rule_steps: int,
) -> Expansion:
    """Expand a series whose DTSTART/DTEND/EXDATEs are already pinned to their zones.

    ``start``/``end`` are recurring-ical-events' span of the entry (end computed from
    DURATION or defaulted), ``span_*`` the window in the staff zone ``tz``.
    """
    timed = isinstance(start, datetime)
    if timed != isinstance(end, datetime) or start > end:
        raise Unsupported  # the full path swaps or mixes these; rare enough to leave there
    if not timed and any(isinstance(x, datetime) for x in exdates):
        raise Unsupported  # recurring-ical-events would switch the series to a time zone
    duration: timedelta = end - start  # type: ignore[operator]

    # --- guard.bound_rule: bound the rule, rewrite UNTIL --------------------------------
    zone: tzinfo = start.tzinfo if isinstance(start, datetime) and start.tzinfo else tz
    first = _naive(span_start - duration, zone)
    stop = _naive(span_end + RULE_MARGIN, zone)
    until = _guard_until(rule.until, zone)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        walk = rrule(
            dtstart=_naive(start, zone),
            until=min(stop, until) if until else stop,
            **_kwargs(rule),
        )
    before = inside = 0
    cut: datetime | None = None
    for dt in walk:
        if dt < first:
            before += 1
            if before > max_rule_steps:
                return Expansion(
                    problem=f"repeats more than {max_rule_steps} times before the checked "
                    "period; not checked"
                )
            continue
        inside += 1
        if inside > max_per_series:
            cut = dt
            break
    if cut is None:
        cut = stop
    truncated = cut < stop
    last = cut - timedelta(seconds=1)
    written: Day | None = rule.until
    if until is None or until > last:
        written = last.replace(tzinfo=zone).astimezone(UTC) if timed else last.date()
    # --- _limit_dates ---------------------------------------------------------------------
    if len(exdates) > max_per_series:
        return Expansion(
            problem=f"lists more than {max_per_series} extra or removed dates", spans=[]
        )

    # --- recurring-ical-events: Series.RecurrenceRules + Series.between --------------------
    series_tz = start.tzinfo if isinstance(start, datetime) else None
    first_start = convert_to_datetime(start, series_tz)
    rie_until, dateutil_until = _rie_until(written, timed)
    exclude_dates = {x for x in exdates if not isinstance(x, datetime)}
    exclude_ids: set[Any] = set()
    for x in exdates:
        exclude_ids.update(to_recurrence_ids(x))
    for x in exdates:
        exclude_ids.add(convert_to_datetime(x, series_tz))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # COUNT with the UNTIL the guard added
        expansion = rrule(dtstart=first_start, until=dateutil_until, cache=True, **_kwargs(rule))
    lo = convert_to_datetime(span_start - duration, series_tz)
    hi = convert_to_datetime(span_end, series_tz)
    candidates: list[datetime] = []
    # DTSTART is the one RDATE of recurring-ical-events' rruleset; its between(inc=True):
    if (rie_until is None or not compare_greater(first_start, rie_until)) and (
        not first_start > hi and first_start >= lo
    ):
        candidates.append(first_start)
    for dt in expansion.between(lo, hi, inc=True):
        if rie_until is None or not compare_greater(dt, rie_until):
            candidates.append(dt)

    out = Expansion()
    seen: set[datetime] = set()
    for dt in candidates:
        if (
            dt in seen
            or convert_to_date(dt) in exclude_dates
            or exclude_ids & set(to_recurrence_ids(dt))
        ):
            continue
        seen.add(dt)
        occ_start: Day = dt
        occ_end: Day = dt + duration
        if not timed:
            occ_start, occ_end = convert_to_date(occ_start), convert_to_date(occ_end)
        if time_span_contains_event(span_start, span_end, occ_start, occ_end):
            out.spans.append((occ_start, occ_end))
            if len(out.spans) > max_per_series:
                break
    if len(out.spans) > max_per_series:
        del out.spans[max_per_series:]
        truncated = True
    if truncated:
        out.problem = (
            f"repeats more than {max_per_series} times in the checked period; only the first "
            f"{max_per_series} are checked"
        )
    return out


def _kwargs(rule: Rule) -> dict[str, Any]:
    # What dateutil's rrulestr passes for the same text (absent parts are left out).
    kw: dict[str, Any] = {"freq": rule.freq, "interval": rule.interval, "count": rule.count}
    if rule.byweekday is not None:
        kw["byweekday"] = list(rule.byweekday)
    if rule.bymonthday is not None:
        kw["bymonthday"] = list(rule.bymonthday)
    if rule.bymonth is not None:
        kw["bymonth"] = list(rule.bymonth)
    if rule.wkst is not None:
        kw["wkst"] = rule.wkst
    return kw


def _naive(value: Day, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(zone)
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def _guard_until(until: Day | None, zone: tzinfo) -> datetime | None:
    """UNTIL as the guard compares it: wall time in the series' zone; a date to 23:59:59."""
    if until is None:
        return None
    if isinstance(until, datetime):
        return _naive(until, zone)
    return datetime(until.year, until.month, until.day, 23, 59, 59)


def _rie_until(written: Day | None, timed: bool) -> tuple[Day | None, datetime | None]:
    """The UNTIL recurring-ical-events filters with, and the one dateutil stops at.

    icalendar writes the value out without microseconds ("...Z" for UTC) and
    recurring-ical-events reads that text back; a value dateutil refuses for the start's
    kind (floating or a date on a zoned start, UTC on an all-day one) is rewritten
    there: to UTC for a zoned start, to its date for an all-day one.
    """
    if written is None:
        return None, None
    if isinstance(written, datetime):
        written = written.replace(microsecond=0)
    if timed:
        if not isinstance(written, datetime):
            written = datetime(written.year, written.month, written.day)
        value = written.replace(tzinfo=UTC)
        return value, value.replace(tzinfo=DATEUTIL_UTC)
    if isinstance(written, datetime) and written.tzinfo is not None:
        day = written.date()
        return day, datetime(day.year, day.month, day.day)
    if isinstance(written, datetime):
        return written, written
    return written, datetime(written.year, written.month, written.day)


__all__ = ["Expansion", "Unsupported", "expand"]
