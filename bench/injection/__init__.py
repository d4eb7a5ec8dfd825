"""Prompt-injection screen benchmark: ``python -m bench.injection.run``."""
