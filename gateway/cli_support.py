"""Shared pieces of the CLI commands: exit codes and error output."""

from __future__ import annotations

import sys

from core.errors import ConfigErrors

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


def fail(message: str, code: int) -> int:
    """Print ``switchboard: message`` on stderr and return ``code``."""
    print(f"switchboard: {message}", file=sys.stderr)
    return code


def report_config_errors(exc: ConfigErrors) -> int:
    """One ``KEY.PATH: problem`` line per error on stderr; exit code 2."""
    for error in exc.errors:
        print(error.message, file=sys.stderr)
    return EXIT_BAD_CONFIG
