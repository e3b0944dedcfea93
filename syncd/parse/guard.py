"""Bounds on a repetition rule, checked before recurring-ical-events expands it.

dateutil builds whole lists between two dates and walks from DTSTART, and only looks at
UNTIL when it yields: a secondly rule from 1990 takes minutes, and a rule whose filters
never match (the 31st of February) iterates to the year 9999. The full path calls
:func:`bound_rule` first; :class:`Skip` carries the Problem text for an entry refused here.
"""

from __future__ import annotations

import calendar
import warnings
from collections.abc import Iterable
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from icalendar.prop import vRecur
from recurring_ical_events import EventAdapter

from syncd.parse.limits import Limits

# Rules are guarded up to the window end plus this much, so a THISANDFUTURE move or a
# long entry that started just after still lands; beyond it nothing can overlap.
_RULE_MARGIN = timedelta(days=7)


class Skip(Exception):
    """An entry that cannot be expanded; its message is the Problem text."""


def bound_rule(
    core: Any, *, window_start: datetime, window_end: datetime, tz: ZoneInfo, limits: Limits
) -> bool:
    """Bound the repetition rule before recurring-ical-events expands it.

    dateutil builds whole lists between two dates and walks from DTSTART, so a
    secondly rule would take minutes. We walk it lazily here, counting, then write an
    UNTIL into the entry that stops the real expansion where it must stop anyway.
    Returns whether the series was cut short.
    """
    start = core["DTSTART"].dt
    zone: tzinfo = start.tzinfo if isinstance(start, datetime) and start.tzinfo is not None else tz
    naive_start = _naive(start, zone)
    first = _naive(window_start - _duration(core), zone)
    stop = _naive(window_end + _RULE_MARGIN, zone)
    rules = core.get("RRULE")
    rules = rules if isinstance(rules, list) else [rules]
    cut: datetime | None = None
    for rule in rules:
        _check_shape(rule)
        until = _rule_until(rule, zone)
        text = ";".join(
            f"{k}={v}"
            for k, v in (
                part.split("=", 1) for part in rule.to_ical().decode().split(";") if "=" in part
            )
            if k.upper() != "UNTIL"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = rrulestr(text, dtstart=naive_start)
                if not isinstance(parsed, rrule):
                    raise Skip("the repetition rule cannot be read")
                drule = parsed.replace(until=min(stop, until) if until else stop)
            except (ValueError, TypeError) as exc:
                raise Skip("the repetition rule cannot be read") from exc
            cut = _min(cut, _walk(drule, first, limits))
    if cut is None:
        cut = stop
    truncated = cut < stop
    new_until: Any
    if isinstance(start, datetime):
        new_until = (cut - timedelta(seconds=1)).replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))
    else:
        new_until = (cut - timedelta(seconds=1)).date()
    replaced = []
    for rule in rules:
        fresh = vRecur(rule)
        old = _rule_until(rule, zone)
        if old is None or old > cut - timedelta(seconds=1):
            fresh["UNTIL"] = [new_until]
        replaced.append(fresh)
    core["RRULE"] = replaced if len(replaced) > 1 else replaced[0]
    return truncated


def _walk(drule: Iterable[datetime], first: datetime, limits: Limits) -> datetime | None:
    """The first start the expansion must not reach, if the rule is too dense."""
    before = 0
    inside = 0
    for dt in drule:
        if dt < first:
            before += 1
            if before > limits.max_rule_steps:
                raise Skip(
                    f"repeats more than {limits.max_rule_steps} times before the "
                    "checked period; not checked"
                )
            continue
        inside += 1
        if inside > limits.max_occurrences_per_series:
            return dt
    return None


def _duration(comp: Any) -> timedelta:
    try:
        adapter = EventAdapter(comp)
        span = adapter.end - adapter.start
    except Exception:  # the expansion itself reports a bad span
        return timedelta(0)
    return span if isinstance(span, timedelta) else timedelta(0)


def limit_dates(comp: Any, limits: Limits) -> None:
    count = 0
    for name in ("RDATE", "EXDATE"):
        values = comp.get(name)
        for value in values if isinstance(values, list) else [values] if values else []:
            count += len(getattr(value, "dts", [value]))
    if count > limits.max_occurrences_per_series:
        raise Skip(f"lists more than {limits.max_occurrences_per_series} extra or removed dates")


def _naive(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(zone)
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def _rule_until(rule: Any, zone: tzinfo) -> datetime | None:
    values = rule.get("UNTIL")
    if not values:
        return None
    until = values[0]
    if isinstance(until, datetime):
        return _naive(until, zone)
    if isinstance(until, date):
        return datetime(until.year, until.month, until.day, 23, 59, 59)
    return None


_SUB_DAILY = {"SECONDLY", "MINUTELY", "HOURLY"}
_DAY_FILTERS = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY")
_WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}


def _check_shape(rule: Any) -> None:
    """Refuse rule shapes that dateutil walks period by period without ever yielding.

    dateutil only looks at UNTIL when it yields, so a rule whose filters never match
    (the 31st of February, an hourly rule with BYSETPOS=2) iterates to the year 9999.
    """
    freq = str((rule.get("FREQ") or [""])[0]).upper()
    by_parts = [k for k in rule if str(k).upper().startswith("BY")]
    if freq in _SUB_DAILY and by_parts:
        raise Skip("repeats more often than daily with extra conditions; not checked")
    if freq == "DAILY" and "BYSETPOS" in rule:
        raise Skip("the repetition rule is not supported; not checked")
    if freq != "YEARLY" and any(k in rule for k in _DAY_FILTERS):
        key = tuple(
            tuple(sorted(str(v) for v in rule.get(k, []))) for k in (*_DAY_FILTERS, "BYDAY")
        )
        if not _satisfiable(key):
            raise Skip("the repetition rule never matches a day; not checked")


@lru_cache(maxsize=256)
def _satisfiable(key: tuple[tuple[str, ...], ...]) -> bool:
    months, monthdays, yeardays, days = key
    month_set = {int(m) for m in months}
    monthday_set = {int(d) for d in monthdays}
    yearday_set = {int(d) for d in yeardays}
    weekday_set = {_WEEKDAYS[d[-2:].upper()] for d in days if d[-2:].upper() in _WEEKDAYS}
    day = date(2000, 1, 1)
    # The Gregorian calendar repeats every 400 years: no match in them means never.
    for _ in range(146_097):
        if (not month_set or day.month in month_set) and (
            not weekday_set or day.weekday() in weekday_set
        ):
            dim = calendar.monthrange(day.year, day.month)[1]
            diy = 366 if calendar.isleap(day.year) else 365
            doy = day.timetuple().tm_yday
            if (
                not monthday_set or day.day in monthday_set or day.day - dim - 1 in monthday_set
            ) and (not yearday_set or doy in yearday_set or doy - diy - 1 in yearday_set):
                return True
        day += timedelta(days=1)
    return False


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
