"""Daily reports: the last day each team's report was enqueued, so it goes once a day, also
across restarts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from syncd.domain.events import Notice
from syncd.store import schema as t
from syncd.store.common import Aggregate
from syncd.store.outbox import enqueue_rows


class Reports(Aggregate):
    def claim_report(self, team: str, kind: str, day: str, notice: Notice, now: datetime) -> bool:
        """Record that ``day``'s report is enqueued, and enqueue it; False if it already was."""
        with self.engine.begin() as conn:
            prev = conn.execute(
                select(t.reports.c.day).where(t.reports.c.team == team, t.reports.c.kind == kind)
            ).scalar_one_or_none()
            if prev is not None and prev >= day:
                return False
            if prev is None:
                conn.execute(insert(t.reports).values(team=team, kind=kind, day=day))
            else:
                conn.execute(
                    update(t.reports)
                    .where(t.reports.c.team == team, t.reports.c.kind == kind)
                    .values(day=day)
                )
            enqueue_rows(conn, [notice], now)
        return True
