"""SQL for run-time registered providers and persisted gateway settings.

Every write here also bumps the ``providers.generation`` setting, in the same transaction:
replicas sharing the database compare that one row with the generation they last loaded
(``generation()``, a primary-key read) and reload only when it moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Integer, String, delete, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict
from core.storage.db import Database, rowcount
from core.storage.models import GatewaySettingRow, RegisteredProviderRow

# The setting counting changes to the registered providers and the other settings.
GENERATION_SETTING = "providers.generation"


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

    async def generation(self) -> int:
        """How many changes this repository has written so far (0 on a fresh database)."""
        value = await self.get_setting(GENERATION_SETTING)
        return int(value) if value else 0

    async def add(self, provider: RegisteredProvider) -> int:
        """Store a new provider; the new generation. Raises ``Conflict`` when the name is taken."""
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
                await session.flush()  # a taken name fails here, before the bump
                return await self._bump_generation(session)
        except IntegrityError:
            raise Conflict(f"a provider named {provider.name!r} is already registered") from None

    async def remove(self, name: str) -> bool:
        """Delete a registered provider; False when there was none."""
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(RegisteredProviderRow).where(RegisteredProviderRow.name == name)
            )
            removed = rowcount(result) > 0
            if removed:
                await self._bump_generation(session)
        return removed

    async def get_setting(self, key: str) -> str | None:
        """A persisted setting, or None."""
        async with self._db.session() as session:
            row = await session.get(GatewaySettingRow, key)
            return row.value if row is not None else None

    async def set_setting(self, key: str, value: str) -> int:
        """Insert or replace a persisted setting; the new generation."""
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
            return await self._bump_generation(session)

    async def _bump_generation(self, session: AsyncSession) -> int:
        # Incremented in the database (an upsert with RETURNING, both backends): two
        # replicas writing at once each get their own number, none is lost.
        statement = self._db.insert(GatewaySettingRow).values(
            key=GENERATION_SETTING, value="1", updated_at=datetime.now(UTC)
        )
        statement = statement.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "value": sql_cast(sql_cast(GatewaySettingRow.value, Integer) + 1, String),
                "updated_at": statement.excluded.updated_at,
            },
        ).returning(GatewaySettingRow.value)
        return int((await session.execute(statement)).scalar_one())


def _record(row: RegisteredProviderRow) -> RegisteredProvider:
    return RegisteredProvider(
        name=row.name,
        type=row.type,
        base_url=row.base_url,
        default_model=row.default_model,
        api_key_secret=row.api_key_secret,
        created_at=row.created_at,
    )
