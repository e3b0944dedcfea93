"""The outbox: every notification is written here first, in the same transaction as the
state change it announces, and sent in a later step; so a crash loses nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, insert, or_, select, update

from syncd.domain.events import Event, Notice, from_json, to_json
from syncd.store import schema as t
from syncd.store.common import Aggregate, chunks


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    team: str
    recipient: str | None  # None: the team's monitors
    event: Event
    created_at: datetime
    attempts: int
    message_key: str | None = None


def enqueue_rows(conn: Connection, notices: Sequence[Notice], now: datetime) -> None:
    """Queue ``notices`` inside the caller's transaction."""
    if not notices:
        return
    conn.execute(
        insert(t.outbox),
        [
            {
                "kind": n.event.kind,
                "team": n.team,
                "recipient": n.recipient,
                "payload": to_json(n.event),
                "created_at": now,
                "due_at": n.due or now,
                "attempts": 0,
            }
            for n in notices
        ],
    )


class Outbox(Aggregate):
    def enqueue(self, notices: Sequence[Notice], now: datetime) -> None:
        with self.engine.begin() as conn:
            enqueue_rows(conn, notices, now)

    def due(self, now: datetime) -> list[OutboxRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.outbox)
                .where(
                    t.outbox.c.sent_at.is_(None),
                    t.outbox.c.failed_at.is_(None),
                    t.outbox.c.due_at <= now,
                    _unclaimed(now),
                )
                .order_by(t.outbox.c.id)
            ).all()
        return [
            OutboxRow(
                id=r.id,
                team=r.team,
                recipient=r.recipient,
                # Rows written before events were typed are version 0: kind from the column.
                event=from_json(r.payload, r.kind),
                created_at=r.created_at,
                attempts=r.attempts,
                message_key=r.message_key,
            )
            for r in rows
        ]

    def claim(self, ids: Sequence[int], now: datetime, until: datetime) -> list[int]:
        """Lease the unsent rows ``ids`` to this sender until ``until``; the ids it got.

        Update-if-unchanged, row by row in one transaction, so of two senders racing for a
        row exactly one gets it; a lease that ran out (its sender crashed) can be taken.
        """
        got: list[int] = []
        with self.engine.begin() as conn:
            for i in ids:
                res = conn.execute(
                    update(t.outbox)
                    .where(
                        t.outbox.c.id == i,
                        t.outbox.c.sent_at.is_(None),
                        t.outbox.c.failed_at.is_(None),
                        _unclaimed(now),
                    )
                    .values(claimed_until=until)
                )
                if res.rowcount:
                    got.append(i)
        return got

    def set_message_key(self, ids: Sequence[int], key: str) -> None:
        """Record, before sending, which message the rows ``ids`` go out in."""
        with self.engine.begin() as conn:
            for chunk in chunks(list(ids)):
                conn.execute(
                    update(t.outbox).where(t.outbox.c.id.in_(chunk)).values(message_key=key)
                )

    def release_claims(self) -> int:
        """Drop every sender's lease; the number dropped. Only for a sender that holds the
        store's sender lock: no other sender can be alive, so the leases are a dead
        process's and need not run out before its rows go again."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(t.outbox)
                .where(t.outbox.c.claimed_until.is_not(None), t.outbox.c.sent_at.is_(None))
                .values(claimed_until=None)
            )
        return int(res.rowcount or 0)

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.outbox.c.id).where(
                    t.outbox.c.sent_at.is_(None), t.outbox.c.failed_at.is_(None)
                )
            ).all()
        return len(rows)

    def mark_sent(self, ids: Sequence[int], now: datetime) -> None:
        with self.engine.begin() as conn:
            for chunk in chunks(list(ids)):
                conn.execute(
                    update(t.outbox)
                    .where(t.outbox.c.id.in_(chunk), t.outbox.c.sent_at.is_(None))
                    .values(sent_at=now, attempts=t.outbox.c.attempts + 1)
                )

    def defer(self, ids: Sequence[int], error: str, until: datetime | None, now: datetime) -> None:
        """Push rows back to ``until`` and release them; ``until=None`` gives up on them
        (permanent failure)."""
        with self.engine.begin() as conn:
            for chunk in chunks(list(ids)):
                values: dict[str, Any] = {
                    "attempts": t.outbox.c.attempts + 1,
                    "last_error": error,
                    "claimed_until": None,  # released: the retry need not wait for the lease
                }
                if until is None:
                    values["failed_at"] = now
                else:
                    values["due_at"] = until
                conn.execute(update(t.outbox).where(t.outbox.c.id.in_(chunk)).values(**values))


def _unclaimed(now: datetime) -> ColumnElement[bool]:
    return or_(t.outbox.c.claimed_until.is_(None), t.outbox.c.claimed_until < now)
