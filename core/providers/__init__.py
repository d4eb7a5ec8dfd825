"""LLM providers: one module per API behind the ``Provider`` protocol of ``core.ports``."""
