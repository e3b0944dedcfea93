"""Step 3 of the cycle: the morning report, enqueued once a day per team (also across
restarts: the store records the day each report was enqueued)."""

from __future__ import annotations

from datetime import datetime, timedelta

from syncd.config import Config
from syncd.domain.events import MorningReport, Notice, ReportBlind, ReportLine, parse_when
from syncd.domain.tracking import window_between
from syncd.store import Store
from syncd.track.context import local


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
        event = MorningReport(
            day=day,
            findings=tuple(
                ReportLine(
                    staff_id=f.calendar,
                    staff_name=names[f.calendar],
                    rule=f.rule,
                    summary=f.summary,
                    start=parse_when(f.start),
                    message=f.message,
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
        )
        store.claim_report(team.name, event.kind, day.isoformat(), Notice(team.name, event), now)
