"""Graph change-notification subscriptions (one per staff calendar on a graph source).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from syncd.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "graph_subscriptions",
        sa.Column("calendar", sa.String(64), primary_key=True),
        sa.Column("subscription_id", sa.String(128), nullable=False, unique=True),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("locator_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("graph_subscriptions")
