"""SQL for run-time registered providers and persisted gateway settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from core.errors import Conflict
from core.storage.db import Database, rowcount
from core.storage.models import GatewaySettingRow, RegisteredProviderRow


@dataclass(frozen=True, slots=True)
class RegisteredProvider:
    """A provider added through the API; ``api_key_secret`` names its vault entry."""

    name: str
    type: str
    base_url: str
    default_model: str | None
    api_key_secret: str | None
    created_at: datetime


class ProviderRepository:
    """Reads and writes ``registered_providers`` and ``gateway_settings``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self) -> list[RegisteredProvider]:
        """Every registered provider, oldest first."""
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(RegisteredProviderRow).order_by(
                        RegisteredProviderRow.created_at, RegisteredProviderRow.name
                    )
                )
            ).all()
        return [_record(row) for row in rows]

    async def add(self, provider: RegisteredProvider) -> None:
        """Store a new provider; raises ``Conflict`` when the name is taken."""
        row = RegisteredProviderRow(
            name=provider.name,
            type=provider.type,
            base_url=provider.base_url,
            default_model=provider.default_model,
            api_key_secret=provider.api_key_secret,
            created_at=provider.created_at,
        )
        try:
            async with self._db.transaction() as session:
                session.add(row)
        except IntegrityError:
            raise Conflict(f"a provider named {provider.name!r} is already registered") from None

    async def remove(self, name: str) -> bool:
        """Delete a registered provider; False when there was none."""
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(RegisteredProviderRow).where(RegisteredProviderRow.name == name)
            )
        return rowcount(result) > 0

    async def get_setting(self, key: str) -> str | None:
        """A persisted setting, or None."""
        async with self._db.session() as session:
            row = await session.get(GatewaySettingRow, key)
            return row.value if row is not None else None

    async def set_setting(self, key: str, value: str) -> None:
        """Insert or replace a persisted setting."""
        # One upsert statement: a read-then-write transaction could fail on a busy SQLite file.
        statement = self._db.insert(GatewaySettingRow).values(
            key=key, value=value, updated_at=datetime.now(UTC)
        )
        statement = statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
        async with self._db.transaction() as session:
            await session.execute(statement)


def _record(row: RegisteredProviderRow) -> RegisteredProvider:
    return RegisteredProvider(
        name=row.name,
        type=row.type,
        base_url=row.base_url,
        default_model=row.default_model,
        api_key_secret=row.api_key_secret,
        created_at=row.created_at,
    )
