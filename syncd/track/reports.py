"""Step 3 of the cycle: the morning report, enqueued once a day per team (also across
restarts: the store records the day each report was enqueued)."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from syncd.config import Config
from syncd.domain.events import (
    MorningReport,
    Notice,
    ReportBlind,
    ReportLine,
    ReportNotRead,
    parse_when,
)
from syncd.domain.rules import UNREADABLE
from syncd.domain.tracking import window_between
from syncd.store import CalendarState, Store
from syncd.track.context import contact, local, local_when


def enqueue_reports(config: Config, store: Store, now: datetime) -> None:
    tz = config.tz
    at = config.notify.morning_report
    wall = now.astimezone(tz)
    if at is None or wall.time() < at:
        return
    day = wall.date()
    span = window_between(day, day + timedelta(days=2), tz)
    findings = store.all_open_findings(span.start, span.end)
    states = {s.key: s for s in store.calendars()}
    for team in config.teams:
        ids = {s.id for s in team.staff}
        names = {s.id: s.name for s in team.staff}
        contacts = {s.id: contact(s) for s in team.staff}
        event = MorningReport(
            day=day,
            findings=tuple(
                ReportLine(
                    staff_id=f.calendar,
                    staff_name=names[f.calendar],
                    rule=f.rule,
                    summary=f.summary,
                    start=local_when(parse_when(f.start), tz),
                    message=f.message,
                    contact=contacts[f.calendar],
                    started=f.start_utc <= now and f.rule != UNREADABLE,
                )
                for f in findings
                if f.calendar in ids
            ),
            blind=tuple(
                ReportBlind(staff_name=names[k], since=local(st.blind_since, tz))
                for k, st in states.items()
                if k in ids and st.blind_since is not None
            ),
            visits=store.count_visits(ids, span.start, span.end),
            calendars=len(ids),
            not_read=tuple(
                ReportNotRead(staff_name=s.name, reason=reason)
                for s in team.staff
                if (reason := _not_read(states.get(s.id), tz)) is not None
            ),
        )
        store.claim_report(team.name, event.kind, day.isoformat(), Notice(team.name, event), now)


def _not_read(state: CalendarState | None, tz: tzinfo) -> str | None:
    """Why a calendar that is not blind was not read either, or None if it was read."""
    if state is not None and state.blind_since is not None:
        return None  # listed as blind
    if state is None or state.last_ok_at is None:
        return "not read yet"
    if state.empty_since is not None:
        since = local(state.empty_since, tz)
        return f"read as empty since {since:%a} {since.day} {since:%b %H:%M}; previous entries held"
    return None
