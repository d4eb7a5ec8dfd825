"""Channel adapters, one per platform (telegram, discord, slack, console).

Each adapter imports only ``core`` and its own platform library; never another adapter.
"""
