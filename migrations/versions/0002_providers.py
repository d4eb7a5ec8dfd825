"""providers: run-time registered providers and persisted gateway settings

Revision ID: 0002_providers
Revises: 0001_vault
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_providers"
down_revision: str | Sequence[str] | None = "0001_vault"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create registered_providers and gateway_settings."""
    op.create_table(
        "registered_providers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=False),
        sa.Column("default_model", sa.String(length=256), nullable=True),
        sa.Column("api_key_secret", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_registered_providers")),
    )
    op.create_table(
        "gateway_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=4096), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_gateway_settings")),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("gateway_settings")
    op.drop_table("registered_providers")
