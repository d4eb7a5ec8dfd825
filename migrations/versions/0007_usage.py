"""usage counters: tokens and provider calls per user, conversation, model and UTC day

Revision ID: 0007_usage
Revises: 0006_outbox
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_usage"
down_revision: str | Sequence[str] | None = "0006_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create usage_counters."""
    op.create_table(
        "usage_counters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_identity", sa.String(length=256), nullable=False),
        sa.Column("conversation", sa.String(length=512), nullable=False),
        sa.Column("provider", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_counters")),
        sa.UniqueConstraint(
            "user_identity",
            "day",
            "conversation",
            "provider",
            "model",
            name="uq_usage_counters_user_day_conversation_provider_model",
        ),
    )
    op.create_index(
        "ix_usage_counters_conversation_day",
        "usage_counters",
        ["conversation", "day"],
        unique=False,
    )
    op.create_index(op.f("ix_usage_counters_day"), "usage_counters", ["day"], unique=False)


def downgrade() -> None:
    """Drop usage_counters."""
    op.drop_index(op.f("ix_usage_counters_day"), table_name="usage_counters")
    op.drop_index("ix_usage_counters_conversation_day", table_name="usage_counters")
    op.drop_table("usage_counters")
