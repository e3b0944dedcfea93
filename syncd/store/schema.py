"""Tables of the state database (SQLAlchemy Core). Changes need a new migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the backend keeps."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

calendars = Table(
    "calendars",
    metadata,
    Column("key", String(64), primary_key=True),  # the staff id
    Column("source", String(128), nullable=False),
    Column("locator_hash", String(64), nullable=False),  # a changed locator restarts the sync
    Column("sync_state", Text),
    Column("last_ok_at", UtcDateTime),
    Column("failures", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("blind_since", UtcDateTime),  # set while the monitor has been told we cannot read it
    Column("empty_since", UtcDateTime),  # a full listing came back empty; entries held
    Column("evaluated_day", String(10)),  # local date of the last evaluation
    Column("dirty", Boolean, nullable=False, default=True),  # items changed since evaluation
)

items = Table(
    "items",
    metadata,
    Column("calendar", String(64), primary_key=True),
    Column("href", String(1024), primary_key=True),
    Column("etag", String(256), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("data", Text, nullable=False),
)

visits = Table(
    "visits",
    metadata,
    Column("calendar", String(64), primary_key=True),
    Column("occurrence", String(512), primary_key=True),
    Column("start_utc", UtcDateTime, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    Index("ix_visits_start", "start_utc"),
)

findings = Table(
    "findings",
    metadata,
    Column("key", String(768), primary_key=True),
    Column("calendar", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("occurrence", String(512), nullable=False),
    Column("uid", String(512), nullable=False),
    Column("summary", Text, nullable=False),
    Column("start", String(40), nullable=False),  # ISO with offset, or a date
    Column("start_utc", UtcDateTime, nullable=False),
    Column("message", Text, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),
    Column("resolution", String(16)),  # fixed | removed | past
    Index("ix_findings_open", "calendar", "resolved_at"),
    Index("ix_findings_start", "start_utc"),
)

# Every state change worth telling someone is written here first and sent in a separate
# step, so a crash between the two loses nothing and a re-run sends nothing twice.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("team", String(256), nullable=False),
    Column("recipient", String(320)),  # None: the team's monitors
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("sent_at", UtcDateTime),
    Column("failed_at", UtcDateTime),
    Column("claimed_until", UtcDateTime),  # a sender's lease: only it sends the row till then
    # The key of the message this row went (or is going) out in: set before the send, so a
    # re-send after a crash between the server's 250 and mark_sent carries the same Message-ID.
    Column("message_key", String(128)),
    Index("ix_outbox_due", "sent_at", "failed_at", "due_at"),
)

reports = Table(
    "reports",
    metadata,
    Column("team", String(256), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("day", String(10), nullable=False),
)

# Graph change-notification subscriptions, one per staff calendar on a graph source, so a
# restart neither loses them (notifications would stop) nor creates duplicates.
graph_subscriptions = Table(
    "graph_subscriptions",
    metadata,
    Column("calendar", String(64), primary_key=True),  # the staff id
    Column("subscription_id", String(128), nullable=False, unique=True),
    Column("source", String(128), nullable=False),
    Column("locator_hash", String(64), nullable=False),  # not the mailbox address itself
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
