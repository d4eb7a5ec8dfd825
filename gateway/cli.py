"""The ``switchboard`` command (also ``python -m gateway``).

Exit codes: 0 success, 1 a failed check, 2 bad usage or bad config (reason on stderr).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from core.config import secret_refs
from gateway import __version__
from gateway.cli_approvals import add_approval_commands
from gateway.cli_audit import add_audit_commands
from gateway.cli_chat import add_chat_command
from gateway.cli_providers import add_provider_commands
from gateway.cli_support import EXIT_FAILED, EXIT_OK, fail, run_command
from gateway.cli_usage import add_usage_command
from gateway.cli_vault import add_vault_commands
from gateway.config_loader import DEFAULT_CONFIG_NAME, config_path, load_config
from gateway.init_cmd import init_workspace
from gateway.log_format import configure_logging
from gateway.redaction import SecretRedactor
from gateway.runtime import connect_database, open_vault
from gateway.schema import upgrade_to_head
from gateway.secrets import database_url, resolve_secrets

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options."""
    parser = argparse.ArgumentParser(
        prog="switchboard", description="Self-hosted multi-channel chat bot gateway."
    )
    parser.add_argument("--version", action="version", version=f"switchboard {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        help=f"config file (default: $SWITCHBOARD_CONFIG or ./{DEFAULT_CONFIG_NAME})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init", parents=[common], help="write a sample config, data folder and random secrets"
    )
    init.add_argument("--dir", metavar="D", help="folder to set up (default: current folder)")
    init.set_defaults(handler=cmd_init)

    check = commands.add_parser("check-config", parents=[common], help="validate the config")
    check.set_defaults(handler=cmd_check_config)

    migrate = commands.add_parser(
        "migrate", parents=[common], help="upgrade the database to the newest schema"
    )
    migrate.set_defaults(handler=cmd_migrate)

    run = commands.add_parser(
        "run", parents=[common], help="serve the admin API and all configured channels"
    )
    run.add_argument("--migrate", action="store_true", help="migrate the database first")
    run.add_argument("--host", help="override [gateway] host")
    run.add_argument("--port", type=int, help="override [gateway] port")
    run.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="override [gateway] log_format: key=value text, or one JSON object per line",
    )
    run.set_defaults(handler=cmd_run)

    add_chat_command(commands, common)
    add_vault_commands(commands, common)
    add_audit_commands(commands, common)
    add_provider_commands(commands, common)
    add_approval_commands(commands, common)
    add_usage_command(commands, common)
    return parser


def cmd_init(args: argparse.Namespace) -> int:
    """``switchboard init``."""
    if args.dir:
        path = Path(args.dir).expanduser().absolute() / DEFAULT_CONFIG_NAME
    else:
        path = config_path(args.config)
    try:
        result = init_workspace(path)
    except FileExistsError as exc:
        return fail(f"{exc} already exists; init never overwrites (remove it first)", EXIT_FAILED)
    print(f"wrote {result.config}")
    print(f"wrote {result.vault_key} (vault passphrase, mode 0600: back it up)")
    print(f"wrote {result.admin_token} (admin API token, mode 0600)")
    where = f" --config {result.config}" if args.dir else ""
    print(f"next: switchboard migrate{where} && switchboard run{where}")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    """``switchboard check-config``: every problem as ``KEY.PATH: what is wrong``."""
    return run_command(_check_config(args))


async def _check_config(args: argparse.Namespace) -> int:
    loaded = load_config(config_path(args.config))
    redactor = SecretRedactor()
    # The database is opened only when a vault: reference needs it.
    db = None
    if any(ref.scheme == "vault" for _, ref in secret_refs(loaded.config)):
        db = await connect_database(loaded, redactor=redactor)
    try:
        vault = await open_vault(loaded, db=db, redactor=redactor) if db else None
        await resolve_secrets(
            loaded.config, base_dir=loaded.base_dir, vault=vault, redactor=redactor
        )
    finally:
        if db is not None:
            await db.close()
    print(f"ok: {loaded.path}")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """``switchboard migrate``: idempotent."""
    return run_command(_migrate(args))


async def _migrate(args: argparse.Namespace) -> int:
    loaded = load_config(config_path(args.config))
    before, after = await upgrade_to_head(database_url(loaded))
    if before == after:
        print(f"database already at the newest schema ({after})")
    else:
        print(f"database migrated from {before or 'empty'} to {after}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``switchboard run``: serves until SIGTERM or SIGINT."""
    return run_command(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from gateway.server import serve  # uvicorn is only needed here

    loaded = load_config(config_path(args.config))
    redactor = SecretRedactor()
    settings = loaded.config.gateway
    configure_logging(
        level=settings.log_level,
        redactor=redactor,
        log_format=args.log_format or settings.log_format,
    )
    await serve(loaded, redactor=redactor, migrate=args.migrate, host=args.host, port=args.port)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``switchboard`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)
