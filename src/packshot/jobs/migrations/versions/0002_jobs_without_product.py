"""jobs.product_id nullable: a catalogue shoot spans many products, it belongs to none

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 18:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("product_id", existing_type=sa.String(length=40), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE product_id IS NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("product_id", existing_type=sa.String(length=40), nullable=False)
