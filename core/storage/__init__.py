"""Persistence: the database handle, the table models and one repository per aggregate.

SQL lives only in this package.
"""

from core.storage.db import Database
from core.storage.models import Base
from core.storage.vault_repo import SecretRecord, VaultChanged, VaultMetaRecord, VaultRepository

__all__ = [
    "Base",
    "Database",
    "SecretRecord",
    "VaultChanged",
    "VaultMetaRecord",
    "VaultRepository",
]
