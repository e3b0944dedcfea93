"""What every step of the cycle shares: the roster of staff calendars and the cycle's tally."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from syncd.config import Config, Staff, Team

Roster = dict[str, tuple[Team, Staff]]
"""Staff id (the calendar key) -> (team, staff), in config order."""


@dataclass
class CycleReport:
    calendars: int = 0
    changed: int = 0
    failed: int = 0
    evaluated: int = 0
    visits: int = 0
    new_findings: int = 0
    resolved_findings: int = 0
    requests: int = 0
    sent: int = 0
    send_failures: int = 0
    blind: list[str] = field(default_factory=list)


def roster(config: Config) -> Roster:
    return {s.id: (team, s) for team in config.teams for s in team.staff}


def local(moment: datetime, tz: tzinfo) -> datetime:
    """The moment in the teams' zone, so emails show the wall-clock time people live by."""
    return moment.astimezone(tz)


def local_when(moment: datetime | date, tz: tzinfo) -> datetime | date:
    """A visit's start as people are shown it: a timed start in the teams' zone (Graph gives
    UTC, EWS the entry's own zone), a date (all-day) as it is."""
    if not isinstance(moment, datetime):
        return moment
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


def contact(staff: Staff) -> str:
    """How the monitor reaches the worker: their phone, or their email if they have none."""
    return staff.phone or staff.email or ""
