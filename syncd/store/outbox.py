"""The outbox: every notification is written here first, in the same transaction as the
state change it announces, and sent in a later step; so a crash loses nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from syncd.store import schema as t
from syncd.store.common import Aggregate, chunks

QueuedEvent = tuple[str, str, str | None, dict[str, Any]]
"""(kind, team, recipient or None for the team's monitors, payload)."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    kind: str
    team: str
    recipient: str | None
    payload: dict[str, Any]
    created_at: datetime
    attempts: int


def enqueue_rows(conn: Connection, events: Sequence[QueuedEvent], now: datetime) -> None:
    """Queue ``events`` inside the caller's transaction."""
    if not events:
        return
    conn.execute(
        insert(t.outbox),
        [
            {
                "kind": kind,
                "team": team,
                "recipient": recipient,
                "payload": json.dumps(payload, sort_keys=True, default=str),
                "created_at": now,
                "due_at": now,
                "attempts": 0,
            }
            for kind, team, recipient, payload in events
        ],
    )


class Outbox(Aggregate):
    def enqueue(self, events: Sequence[QueuedEvent], now: datetime) -> None:
        with self.engine.begin() as conn:
            enqueue_rows(conn, events, now)

    def due(self, now: datetime) -> list[OutboxRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.outbox)
                .where(
                    t.outbox.c.sent_at.is_(None),
                    t.outbox.c.failed_at.is_(None),
                    t.outbox.c.due_at <= now,
                )
                .order_by(t.outbox.c.id)
            ).all()
        return [
            OutboxRow(
                id=r.id,
                kind=r.kind,
                team=r.team,
                recipient=r.recipient,
                payload=json.loads(r.payload),
                created_at=r.created_at,
                attempts=r.attempts,
            )
            for r in rows
        ]

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
        """Push rows back to ``until``; ``until=None`` gives up on them (permanent failure)."""
        with self.engine.begin() as conn:
            for chunk in chunks(list(ids)):
                values: dict[str, Any] = {"attempts": t.outbox.c.attempts + 1, "last_error": error}
                if until is None:
                    values["failed_at"] = now
                else:
                    values["due_at"] = until
                conn.execute(update(t.outbox).where(t.outbox.c.id.in_(chunk)).values(**values))
