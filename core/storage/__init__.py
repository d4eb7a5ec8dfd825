"""Persistence: the database handle, the table models and one repository per aggregate.

SQL lives only in this package.
"""

from core.storage.db import Database
from core.storage.models import Base
from core.storage.provider_repo import ProviderRepository, RegisteredProvider
from core.storage.vault_repo import SecretRecord, VaultChanged, VaultMetaRecord, VaultRepository

__all__ = [
    "Base",
    "Database",
    "ProviderRepository",
    "RegisteredProvider",
    "SecretRecord",
    "VaultChanged",
    "VaultMetaRecord",
    "VaultRepository",
]
