"""Shared pieces of the CLI commands: exit codes, and errors turned into stderr lines."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from core.errors import ConfigErrors, SchemaOutOfDate, SwitchboardError, VaultKeyMismatch

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


def fail(message: str, code: int) -> int:
    """Print ``switchboard: message`` on stderr and return ``code``."""
    print(f"switchboard: {message}", file=sys.stderr)
    return code


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): a faster event loop, same semantics."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_command(work: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine; every expected error becomes a message and an exit code.

    Bad config, a wrong vault key and an out-of-date schema exit 2 (the operator must fix
    something first); any other failure exits 1.
    """
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(work)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error.message, file=sys.stderr)
        return EXIT_BAD_CONFIG
    except VaultKeyMismatch as exc:
        return fail(f"security.vault_key: {exc.message}; nothing was changed", EXIT_BAD_CONFIG)
    except SchemaOutOfDate as exc:
        return fail(exc.message, EXIT_BAD_CONFIG)
    except SwitchboardError as exc:
        return fail(exc.message, EXIT_FAILED)
    except OSError as exc:
        return fail(str(exc), EXIT_FAILED)
