"""Drop visits.data (written on every evaluation, never read).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot drop a column in place: batch mode copies the table.
    with op.batch_alter_table("visits") as batch:
        batch.drop_column("data")


def downgrade() -> None:
    with op.batch_alter_table("visits") as batch:
        batch.add_column(sa.Column("data", sa.Text, nullable=False, server_default="{}"))
