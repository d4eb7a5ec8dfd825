"""replicas: live gateway processes, and the owner of each accepted message and running action

Revision ID: 0008_replicas
Revises: 0007_usage
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_replicas"
down_revision: str | Sequence[str] | None = "0007_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create replicas; add owner to inbound_messages and actions."""
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=256), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process_start", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replicas")),
    )
    op.create_index(op.f("ix_replicas_heartbeat_at"), "replicas", ["heartbeat_at"], unique=False)
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_inbound_messages_owner"), ["owner"], unique=False)
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_actions_owner"), ["owner"], unique=False)


def downgrade() -> None:
    """Drop the owner columns and replicas."""
    with op.batch_alter_table("actions") as batch:
        batch.drop_index(batch.f("ix_actions_owner"))
        batch.drop_column("owner")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_index(batch.f("ix_inbound_messages_owner"))
        batch.drop_column("owner")
    op.drop_index(op.f("ix_replicas_heartbeat_at"), table_name="replicas")
    op.drop_table("replicas")
