"""Pure bookkeeping between cycles: the checking window and the finding diff.

No I/O, no clock: ``now`` comes from the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from syncd.domain.model import Finding, Problem, Window


def local_day(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def window_for(now: datetime, tz: ZoneInfo, days: int) -> Window:
    """Today (local) plus ``days`` days, midnight to midnight, end exclusive."""
    return window_between(local_day(now, tz), local_day(now, tz) + timedelta(days=days), tz)


def window_between(first: date, stop: date, tz: ZoneInfo) -> Window:
    # Local midnight exists on every UK date (clocks change at 01:00/02:00), and fold=0 picks
    # the earlier instant elsewhere, so the window never skips an hour of visits.
    return Window(
        start=datetime.combine(first, time(0), tzinfo=tz),
        end=datetime.combine(stop, time(0), tzinfo=tz),
    )


@dataclass(frozen=True, slots=True)
class FindingDiff:
    new: list[Finding]
    resolved: list[tuple[str, str]]
    """(finding key, resolution): ``fixed`` (the visit is still there and now passes),
    ``removed`` (no longer a visit in the window), ``past`` (the visit's day has gone)."""


def diff_findings(
    open_keys: Mapping[str, datetime],
    current: Iterable[Finding],
    visit_keys: set[str],
    open_occurrences: Mapping[str, str],
    window: Window,
) -> FindingDiff:
    """Compare the findings still open in the store with this evaluation's findings.

    ``open_keys`` maps each open finding key to its visit's start (UTC);
    ``open_occurrences`` maps it to its occurrence key.
    """
    current_by_key = {f.key: f for f in current}
    new = [f for k, f in current_by_key.items() if k not in open_keys]
    resolved: list[tuple[str, str]] = []
    for key, start in open_keys.items():
        if key in current_by_key:
            continue
        if start < window.start:
            resolved.append((key, "past"))
        elif open_occurrences[key] in visit_keys:
            resolved.append((key, "fixed"))
        else:
            resolved.append((key, "removed"))
    return FindingDiff(new=new, resolved=resolved)


def problem_finding(calendar: str, p: Problem, window: Window) -> Finding:
    """An entry that could not be read, as a finding the monitor sees (rule unreadable-entry).

    It has no start of its own; it is dated at the window's start so it sorts first.
    """
    return Finding(
        rule="unreadable-entry",
        calendar=calendar,
        uid=p.uid,
        occurrence_key=f"{p.uid}|unreadable",
        summary=p.summary,
        start=window.start,
        message=p.message,
    )
