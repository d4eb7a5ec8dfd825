"""Everything platform-independent: types, ports, errors, providers, security, storage.

``core`` imports neither ``channels`` nor ``gateway`` (enforced by import-linter).
"""
