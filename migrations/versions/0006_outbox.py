"""the outbox: durable delivery of replies and approval buttons

Revision ID: 0006_outbox
Revises: 0005_conversations
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_outbox"
down_revision: str | Sequence[str] | None = "0005_conversations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create outbound_messages."""
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("conversation", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("platform_message_id", sa.String(length=256), nullable=True),
        sa.Column("approval_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
    )
    op.create_index(
        "ix_outbound_messages_platform_status_id",
        "outbound_messages",
        ["platform", "status", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_outbound_messages_approval_id"),
        "outbound_messages",
        ["approval_id"],
        unique=False,
    )


def downgrade() -> None:
    """Drop outbound_messages."""
    op.drop_index(op.f("ix_outbound_messages_approval_id"), table_name="outbound_messages")
    op.drop_index("ix_outbound_messages_platform_status_id", table_name="outbound_messages")
    op.drop_table("outbound_messages")
