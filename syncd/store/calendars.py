"""Calendars and their items: each staff calendar's sync state and health, and the entries
as fetched. Items and the sync state that describes them are written in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from syncd.domain.model import ChangeSet, RawItem
from syncd.store import schema as t
from syncd.store.common import Aggregate, chunks, locator_hash


@dataclass(frozen=True, slots=True)
class CalendarState:
    key: str
    source: str
    locator_hash: str
    sync_state: str | None
    last_ok_at: datetime | None
    failures: int
    last_error: str | None
    blind_since: datetime | None
    empty_since: datetime | None
    evaluated_day: str | None
    dirty: bool


class Calendars(Aggregate):
    def calendar(self, key: str) -> CalendarState | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.calendars).where(t.calendars.c.key == key)).first()
        return CalendarState(**row._mapping) if row else None

    def calendars(self) -> list[CalendarState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.calendars).order_by(t.calendars.c.key)).all()
        return [CalendarState(**r._mapping) for r in rows]

    def ensure_calendar(self, key: str, source: str, locator: str) -> CalendarState:
        """Register a configured calendar. A changed source or locator starts it afresh."""
        h = locator_hash(source, locator)
        with self.engine.begin() as conn:
            row = conn.execute(select(t.calendars).where(t.calendars.c.key == key)).first()
            if row is None:
                conn.execute(
                    insert(t.calendars).values(
                        key=key, source=source, locator_hash=h, failures=0, dirty=True
                    )
                )
            elif row.locator_hash != h:
                conn.execute(delete(t.items).where(t.items.c.calendar == key))
                conn.execute(
                    update(t.calendars)
                    .where(t.calendars.c.key == key)
                    .values(
                        source=source, locator_hash=h, sync_state=None, dirty=True, empty_since=None
                    )
                )
        state = self.calendar(key)
        assert state is not None
        return state

    def known(self, key: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.items.c.href, t.items.c.etag).where(t.items.c.calendar == key)
            ).all()
        return {r.href: r.etag for r in rows}

    def items(self, key: str) -> list[RawItem]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.items.c.href, t.items.c.etag, t.items.c.kind, t.items.c.data)
                .where(t.items.c.calendar == key)
                .order_by(t.items.c.href)
            ).all()
        return [RawItem(href=r.href, etag=r.etag, kind=r.kind, data=r.data) for r in rows]

    def apply_changes(self, key: str, changes: ChangeSet, now: datetime) -> None:
        """Store a successful sync: items, their new sync state, and a healthy calendar."""
        with self.engine.begin() as conn:
            if changes.deletes:
                for chunk in chunks(changes.deletes):
                    conn.execute(
                        delete(t.items).where(t.items.c.calendar == key, t.items.c.href.in_(chunk))
                    )
            if changes.upserts:
                hrefs = [i.href for i in changes.upserts]
                for chunk in chunks(hrefs):
                    conn.execute(
                        delete(t.items).where(t.items.c.calendar == key, t.items.c.href.in_(chunk))
                    )
                conn.execute(
                    insert(t.items),
                    [
                        {
                            "calendar": key,
                            "href": i.href,
                            "etag": i.etag,
                            "kind": i.kind,
                            "data": i.data,
                        }
                        for i in changes.upserts
                    ],
                )
            values: dict[str, Any] = {
                "sync_state": changes.state,
                "last_ok_at": now,
                "failures": 0,
                "last_error": None,
                "empty_since": None,
            }
            if changes.upserts or changes.deletes:
                values["dirty"] = True
            conn.execute(update(t.calendars).where(t.calendars.c.key == key).values(**values))

    def all_known(self) -> dict[str, dict[str, str]]:
        """href -> etag of every stored item, per calendar, in one query."""
        out: dict[str, dict[str, str]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(select(t.items.c.calendar, t.items.c.href, t.items.c.etag)):
                out.setdefault(r.calendar, {})[r.href] = r.etag
        return out

    def mark_synced(self, synced: Sequence[tuple[str, str | None]], now: datetime) -> None:
        """Record quiet successful syncs (calendar key, new sync state) in one transaction."""
        if not synced:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(t.calendars)
                .where(t.calendars.c.key == bindparam("k"))
                .values(sync_state=bindparam("s"), last_ok_at=now),
                [{"k": k, "s": s} for k, s in synced],
            )

    def mark_ok(self, key: str, now: datetime, *, empty_since: datetime | None = None) -> None:
        """A read that succeeded but whose changes are being held (an empty calendar)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.calendars)
                .where(t.calendars.c.key == key)
                .values(last_ok_at=now, failures=0, last_error=None, empty_since=empty_since)
            )

    def record_failure(self, key: str, error: str) -> int:
        """Count a failed read; return the number of consecutive failures."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.calendars)
                .where(t.calendars.c.key == key)
                .values(failures=t.calendars.c.failures + 1, last_error=error)
            )
            n = conn.execute(
                select(t.calendars.c.failures).where(t.calendars.c.key == key)
            ).scalar_one()
        return int(n)

    def set_blind(self, key: str, since: datetime | None) -> bool:
        """Flip the blind-spot flag; True only for the caller that changed it.

        Only-if-unchanged, so an alert is enqueued once even if two cycles race.
        """
        with self.engine.begin() as conn:
            cond = (
                t.calendars.c.blind_since.is_(None)
                if since
                else t.calendars.c.blind_since.isnot(None)
            )
            res = conn.execute(
                update(t.calendars).where(t.calendars.c.key == key, cond).values(blind_since=since)
            )
        return bool(res.rowcount)
