"""Security: the encrypted vault (and, later, injection screening and the audit log)."""

from core.security.vault import ScryptParams, Vault

__all__ = ["ScryptParams", "Vault"]
