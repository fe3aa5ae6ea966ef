"""the limits every web process shares: rate-limit buckets and open event streams

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 18:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_rate_buckets_updated_at", "rate_buckets", ["updated_at"])
    op.create_table(
        "stream_leases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stream_leases_merchant_id", "stream_leases", ["merchant_id"])
    op.create_index("ix_stream_leases_expires_at", "stream_leases", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_stream_leases_expires_at", table_name="stream_leases")
    op.drop_index("ix_stream_leases_merchant_id", table_name="stream_leases")
    op.drop_table("stream_leases")
    op.drop_index("ix_rate_buckets_updated_at", table_name="rate_buckets")
    op.drop_table("rate_buckets")
