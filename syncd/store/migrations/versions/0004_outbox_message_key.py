"""outbox.message_key: the Message-ID key of the message a row was last sent in, recorded
before the send, so a re-send after a crash rebuilds the same message with the same id.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("message_key", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("message_key")
