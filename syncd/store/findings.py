"""Findings and visits: what each evaluation saw and found. A finding is opened once, kept
with its first-seen time, and resolved as fixed, removed or past; the visits as last seen
feed the morning report's count."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from syncd.domain.events import Notice
from syncd.domain.model import Finding, Occurrence
from syncd.store import schema as t
from syncd.store.common import Aggregate, chunks, utc_start
from syncd.store.outbox import enqueue_rows


@dataclass(frozen=True, slots=True)
class OpenFinding:
    key: str
    calendar: str
    rule: str
    occurrence: str
    summary: str
    start: str
    start_utc: datetime
    message: str
    first_seen: datetime


class Findings(Aggregate):
    def open_findings(self, key: str) -> dict[str, OpenFinding]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.findings).where(
                    t.findings.c.calendar == key, t.findings.c.resolved_at.is_(None)
                )
            ).all()
        return {r.key: _open_finding(r._mapping) for r in rows}

    def all_open_findings(self, start_from: datetime, start_before: datetime) -> list[OpenFinding]:
        """Open findings for visits starting in [start_from, start_before), by start."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.findings)
                .where(
                    t.findings.c.resolved_at.is_(None),
                    t.findings.c.start_utc >= start_from,
                    t.findings.c.start_utc < start_before,
                )
                .order_by(t.findings.c.start_utc, t.findings.c.calendar, t.findings.c.rule)
            ).all()
        return [_open_finding(r._mapping) for r in rows]

    def count_visits(
        self, calendars: Iterable[str], start_from: datetime, start_before: datetime
    ) -> int:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.visits.c.occurrence).where(
                    t.visits.c.calendar.in_(list(calendars)),
                    t.visits.c.start_utc >= start_from,
                    t.visits.c.start_utc < start_before,
                )
            ).all()
        return len(rows)

    def save_evaluation(
        self,
        key: str,
        *,
        day: str,
        now: datetime,
        visits: Sequence[Occurrence],
        new: Sequence[tuple[Finding, datetime]],
        resolved: Iterable[tuple[str, str]],
        notices: Sequence[Notice],
        redated: Iterable[tuple[str, str, datetime]] = (),
    ) -> None:
        """One transaction: visits as seen, new and resolved findings, and their outbox rows.

        ``new`` pairs each finding with its start in UTC; ``resolved`` is (finding key,
        resolution); ``redated`` is (finding key, start, start in UTC) for open findings whose
        date moved; ``notices`` go to the outbox.
        """
        with self.engine.begin() as conn:
            conn.execute(delete(t.visits).where(t.visits.c.calendar == key))
            if visits:
                conn.execute(
                    insert(t.visits),
                    [
                        {
                            "calendar": key,
                            "occurrence": v.key,
                            "start_utc": utc_start(v.start),
                            "seen_at": now,
                        }
                        for v in visits
                    ],
                )
            if new:
                # A finding fixed earlier and broken again is a new finding: its old, resolved
                # row makes way, or the insert would collide and it would never reopen.
                for chunk in chunks([f.key for f, _ in new]):
                    conn.execute(
                        delete(t.findings).where(
                            t.findings.c.key.in_(chunk), t.findings.c.resolved_at.isnot(None)
                        )
                    )
                conn.execute(
                    insert(t.findings),
                    [
                        {
                            "key": f.key,
                            "calendar": key,
                            "rule": f.rule,
                            "occurrence": f.occurrence_key,
                            "uid": f.uid,
                            "summary": f.summary,
                            "start": f.start.isoformat(),
                            "start_utc": start_utc,
                            "message": f.message,
                            "first_seen": now,
                        }
                        for f, start_utc in new
                    ],
                )
            for fkey, start, start_utc in redated:
                conn.execute(
                    update(t.findings)
                    .where(t.findings.c.key == fkey, t.findings.c.resolved_at.is_(None))
                    .values(start=start, start_utc=start_utc)
                )
            for fkey, resolution in resolved:
                conn.execute(
                    update(t.findings)
                    .where(t.findings.c.key == fkey, t.findings.c.resolved_at.is_(None))
                    .values(resolved_at=now, resolution=resolution)
                )
            enqueue_rows(conn, notices, now)
            conn.execute(
                update(t.calendars)
                .where(t.calendars.c.key == key)
                .values(evaluated_day=day, dirty=False)
            )


def _open_finding(m: Any) -> OpenFinding:
    return OpenFinding(
        key=m["key"],
        calendar=m["calendar"],
        rule=m["rule"],
        occurrence=m["occurrence"],
        summary=m["summary"],
        start=m["start"],
        start_utc=m["start_utc"],
        message=m["message"],
        first_seen=m["first_seen"],
    )
