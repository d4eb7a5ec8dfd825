"""vault: the settings row and the encrypted entries

Revision ID: 0001_vault
Revises:
Create Date: 2026-12-02

Written by hand to match core/storage/models.py on SQLite and PostgreSQL;
tests/gateway/test_schema.py compares the two.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001_vault"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create vault_meta (one row, id = 1) and vault_secrets."""
    op.create_table(
        "vault_meta",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kdf", sa.String(length=32), nullable=False),
        sa.Column("scrypt_n", sa.Integer(), nullable=False),
        sa.Column("scrypt_r", sa.Integer(), nullable=False),
        sa.Column("scrypt_p", sa.Integer(), nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("wrap_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_vault_meta_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_meta")),
    )
    op.create_table(
        "vault_secrets",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_vault_secrets")),
    )


def downgrade() -> None:
    """Drop the vault tables (and every secret in them)."""
    op.drop_table("vault_secrets")
    op.drop_table("vault_meta")
