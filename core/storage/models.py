"""SQLAlchemy models: the declarative ``Base`` every table hangs off, and the vault tables.

Alembic revisions under ``migrations/versions`` are written by hand and must match these
models exactly; ``tests/gateway/test_schema.py`` compares them on both backends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can drop or alter them by name on both
# backends (SQLite batch mode needs a name to recreate a table without a constraint).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps the offset (``timestamptz``); SQLite stores text without one, so
    values are normalized to UTC on the way in and tagged as UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every Switchboard table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class VaultMetaRow(Base):
    """The vault's single settings row: KDF parameters and the wrapped data key."""

    __tablename__ = "vault_meta"
    __table_args__ = (
        # One vault per database: the row id is pinned, so a racing second insert conflicts.
        CheckConstraint("id = 1", name="singleton"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kdf: Mapped[str] = mapped_column(String(32))
    scrypt_n: Mapped[int] = mapped_column(Integer)
    scrypt_r: Mapped[int] = mapped_column(Integer)
    scrypt_p: Mapped[int] = mapped_column(Integer)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    wrap_nonce: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class VaultSecretRow(Base):
    """One encrypted secret; ``key_version`` says which data key encrypted it."""

    __tablename__ = "vault_secrets"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RegisteredProviderRow(Base):
    """A provider added at run time (``POST /api/providers/register``); its key is in the vault."""

    __tablename__ = "registered_providers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str] = mapped_column(String(2048))
    default_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # Name of the vault entry holding the API key; never the key itself.
    api_key_secret: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GatewaySettingRow(Base):
    """A setting changed through the API that must survive a restart (e.g. the default provider)."""

    __tablename__ = "gateway_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(4096))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """One audit record, chained to the one before by SHA-256 (see core.security.audit)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(256), nullable=True)
    conversation: Mapped[str | None] = mapped_column(String(512), nullable=True)
    action_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Canonical JSON of the record's details (secrets redacted before they get here).
    data: Mapped[str] = mapped_column(Text())
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class NoteRow(Base):
    """A note the ``remember`` tool keeps for one conversation."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation: Mapped[str] = mapped_column(String(512), index=True)
    text: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ActionRow(Base):
    """Something with an effect (chat, tool call, admin change), with its level and lifecycle."""

    __tablename__ = "actions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), index=True)
    conversation: Mapped[str | None] = mapped_column(String(512), nullable=True, index=True)
    requester: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # Canonical JSON of exactly what runs; payload_sha256 is its hash.
    payload: Mapped[str] = mapped_column(Text())
    payload_sha256: Mapped[str] = mapped_column(String(64))
    result: Mapped[str | None] = mapped_column(Text(), nullable=True)
    error: Mapped[str | None] = mapped_column(Text(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The replica that last moved it to "running" (see ReplicaRow); NULL before 0008.
    owner: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)


class ApprovalRow(Base):
    """A human decision bound to the SHA-256 of exactly what an action will run."""

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    action_id: Mapped[str] = mapped_column(String(32), ForeignKey("actions.id"), unique=True)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    level: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConversationRow(Base):
    """One conversation: where it lives and its /provider and /model overrides."""

    __tablename__ = "conversations"

    # str(ConversationKey); the parts are kept too, so the key can be rebuilt exactly.
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    platform: Mapped[str] = mapped_column(String(64))
    chat: Mapped[str] = mapped_column(String(256))
    thread: Mapped[str | None] = mapped_column(String(256), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ConversationMessageRow(Base):
    """One message of a conversation's history, in insertion (id) order."""

    __tablename__ = "conversation_messages"
    __table_args__ = (
        # Serves "the newest N of a conversation" and the foreign key's cascade alike, so
        # no separate single-column index on conversation.
        Index("ix_conversation_messages_conversation_id", "conversation", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation: Mapped[str] = mapped_column(
        String(512), ForeignKey("conversations.key", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text())
    # JSON list of {"id", "name", "arguments"}; NULL when the message calls no tool.
    tool_calls: Mapped[str | None] = mapped_column(Text(), nullable=True)
    tool_call_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    action_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InboundMessageRow(Base):
    """The dedupe ledger: one row per platform message ever accepted, with its outcome."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        # Named explicitly: the convention names a unique constraint after its first column.
        UniqueConstraint("platform", "message_id", name="uq_inbound_messages_platform_message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(256))
    conversation: Mapped[str] = mapped_column(String(512))
    sender: Mapped[str] = mapped_column(String(256))
    # The InboundMessage as JSON, so an unhandled one can be replayed after a restart.
    payload: Mapped[str] = mapped_column(Text())
    status: Mapped[str] = mapped_column(String(16), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The replica handling it while "accepted"; taken over when that replica dies.
    owner: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)


class OutboundMessageRow(Base):
    """The outbox: what each channel must still send, and what it sent (with the id)."""

    __tablename__ = "outbound_messages"
    __table_args__ = (Index("ix_outbound_messages_platform_status_id", "platform", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(64))
    conversation: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(24))
    # The OutboundItem as JSON.
    payload: Mapped[str] = mapped_column(Text())
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text(), nullable=True)
    platform_message_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    approval_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UsageRow(Base):
    """Tokens and provider calls of one user in one conversation on one model, per UTC day.

    Written only by an upsert that adds to the counters (core.storage.usage_repo), so any
    number of processes can record at once without losing a count.
    """

    __tablename__ = "usage_counters"
    __table_args__ = (
        # Serves the upsert and "this user's usage since day D" alike.
        UniqueConstraint(
            "user_identity",
            "day",
            "conversation",
            "provider",
            "model",
            name="uq_usage_counters_user_day_conversation_provider_model",
        ),
        Index("ix_usage_counters_conversation_day", "conversation", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_identity: Mapped[str] = mapped_column(String(256))
    conversation: Mapped[str] = mapped_column(String(512))
    provider: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(256))
    # The calendar day in UTC the calls were made on.
    day: Mapped[date] = mapped_column(Date(), index=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger())
    output_tokens: Mapped[int] = mapped_column(BigInteger())
    requests: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReplicaRow(Base):
    """A live gateway process (or CLI process running turns) and its heartbeat.

    Inbound messages and running actions carry their replica's id; when a replica is
    gone (its heartbeat stale, or its process dead on this very host), another one
    takes its work over (``gateway.replicas``).
    """

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # hostname|boot id|pid namespace: equal only for processes that see the same pids.
    host: Mapped[str] = mapped_column(String(256))
    pid: Mapped[int] = mapped_column(Integer)
    # The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), so a
    # reused pid is not mistaken for the replica.
    process_start: Mapped[int] = mapped_column(BigInteger())
    role: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
