"""``switchboard chat``: the console channel on this terminal, through the orchestrator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import re
import sys
from typing import Any

from channels.console import ConsoleChannel
from core.turns import Route
from gateway.cli_support import EXIT_BAD_CONFIG, EXIT_OK, fail, run_command
from gateway.config_loader import config_path, load_config
from gateway.log_format import configure_logging
from gateway.redaction import SecretRedactor
from gateway.runtime import Runtime

_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def add_chat_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``chat``."""
    chat = commands.add_parser(
        "chat", parents=[common], help="talk to the assistant on this terminal"
    )
    chat.add_argument("--provider", help="ask this provider only (default: the default one)")
    chat.add_argument("--model", help="model id, or provider/model")
    chat.add_argument("--user", help="your name in the conversation (default: the OS user)")
    chat.add_argument("--no-stream", action="store_true", help="print answers when complete")
    chat.set_defaults(handler=lambda args: run_command(_chat(args)))


async def _read_stdin_line() -> str:
    # A thread, because stdin may be a terminal, a pipe or a file; "" at end of input.
    return await asyncio.to_thread(sys.stdin.readline)


async def _chat(args: argparse.Namespace) -> int:
    user = args.user or getpass.getuser()
    if not _USER.match(user):
        return fail(
            f"--user {user!r}: use letters, digits and . _ @ - (at most 64)", EXIT_BAD_CONFIG
        )
    loaded = load_config(config_path(args.config))
    redactor = SecretRedactor()
    configure_logging(level="warning", redactor=redactor)
    runtime = await Runtime.open(loaded, redactor=redactor, role="cli")
    console = ConsoleChannel(
        user=user,
        read_line=_read_stdin_line,
        out=sys.stdout,
        route=Route(provider=args.provider, model=args.model),
        stream=not args.no_stream,
    )
    orchestrator = runtime.orchestrator
    orchestrator.register_sink(console.name, console)
    sweeper = asyncio.create_task(orchestrator.run_sweeper())  # owned: cancelled below
    try:
        await console.run(orchestrator.handle)
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await runtime.close()
    return EXIT_OK
