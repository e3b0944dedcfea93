"""Initial schema: calendars, items, visits, findings, outbox, reports.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from syncd.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A frozen copy of the schema as of this revision; later revisions alter it.
    op.create_table(
        "calendars",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("locator_hash", sa.String(64), nullable=False),
        sa.Column("sync_state", sa.Text),
        sa.Column("last_ok_at", UtcDateTime),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("blind_since", UtcDateTime),
        sa.Column("empty_since", UtcDateTime),
        sa.Column("evaluated_day", sa.String(10)),
        sa.Column("dirty", sa.Boolean, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("calendar", sa.String(64), primary_key=True),
        sa.Column("href", sa.String(1024), primary_key=True),
        sa.Column("etag", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_table(
        "visits",
        sa.Column("calendar", sa.String(64), primary_key=True),
        sa.Column("occurrence", sa.String(512), primary_key=True),
        sa.Column("start_utc", UtcDateTime, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("seen_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_visits_start", "visits", ["start_utc"])
    op.create_table(
        "findings",
        sa.Column("key", sa.String(768), primary_key=True),
        sa.Column("calendar", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("occurrence", sa.String(512), nullable=False),
        sa.Column("uid", sa.String(512), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("start", sa.String(40), nullable=False),
        sa.Column("start_utc", UtcDateTime, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("first_seen", UtcDateTime, nullable=False),
        sa.Column("resolved_at", UtcDateTime),
        sa.Column("resolution", sa.String(16)),
    )
    op.create_index("ix_findings_open", "findings", ["calendar", "resolved_at"])
    op.create_index("ix_findings_start", "findings", ["start_utc"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("team", sa.String(256), nullable=False),
        sa.Column("recipient", sa.String(320)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("sent_at", UtcDateTime),
        sa.Column("failed_at", UtcDateTime),
    )
    op.create_index("ix_outbox_due", "outbox", ["sent_at", "failed_at", "due_at"])
    op.create_table(
        "reports",
        sa.Column("team", sa.String(256), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
    )
