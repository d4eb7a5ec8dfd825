"""Alembic migrations of the Switchboard schema.

Run them with ``switchboard migrate`` (``gateway.schema.upgrade_to_head``); developers
write new revisions with ``alembic revision -m "..."`` from the repository root. Every
revision is written by hand to match ``core.storage.models`` and works on SQLite and
PostgreSQL.
"""

# Key of the PostgreSQL advisory lock that keeps two processes from migrating at once
# (two replicas started with `run --migrate`); any fixed 64-bit value works.
MIGRATION_LOCK_KEY = 0x5357_424F_4152_4431  # "SWBOARD1"
