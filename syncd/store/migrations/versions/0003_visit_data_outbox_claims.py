"""Drop visits.data (written on every evaluation, never read); outbox.claimed_until, the
lease a sender takes on a row before sending it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from syncd.store.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot alter a table in place: batch mode copies it.
    with op.batch_alter_table("visits") as batch:
        batch.drop_column("data")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_until", UtcDateTime))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_until")
    with op.batch_alter_table("visits") as batch:
        batch.add_column(sa.Column("data", sa.Text, nullable=False, server_default="{}"))
