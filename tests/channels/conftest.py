"""The channel tests run the whole gateway: they share the gateway tests' workspace."""

from tests.gateway.conftest import workspace

__all__ = ["workspace"]
