"""``switchboard vault set|get|list|delete|rotate``: the encrypted secrets."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from core.approvals import ApprovalPolicy, ApprovalService
from core.security.audit import AuditLog
from core.security.vault import Vault
from core.storage.action_repo import ActionRepository
from core.storage.audit_repo import AuditRepository
from core.types import SecurityLevel
from gateway.admin_actions import operator_action
from gateway.cli_support import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_OK, fail, run_command
from gateway.config_loader import LoadedConfig, config_path, load_config
from gateway.redaction import SecretRedactor
from gateway.runtime import connect_database, open_vault


def add_vault_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``vault`` and its sub-commands."""
    vault = commands.add_parser(
        "vault", help="encrypted secrets (values never on the command line)"
    )
    sub = vault.add_subparsers(dest="vault_command", metavar="ACTION", required=True)
    set_ = sub.add_parser("set", parents=[common], help="store NAME; the value is read on stdin")
    set_.add_argument("name")
    set_.set_defaults(handler=cmd_vault_set)
    get = sub.add_parser("get", parents=[common], help="print the value of NAME")
    get.add_argument("name")
    get.set_defaults(handler=cmd_vault_get)
    list_ = sub.add_parser("list", parents=[common], help="names only, never values")
    list_.add_argument("--json", action="store_true")
    list_.set_defaults(handler=cmd_vault_list)
    delete = sub.add_parser("delete", parents=[common], help="remove NAME")
    delete.add_argument("name")
    delete.set_defaults(handler=cmd_vault_delete)
    rotate = sub.add_parser(
        "rotate", parents=[common], help="re-encrypt everything under a fresh data key"
    )
    rotate.add_argument(
        "--new-passphrase",
        action="store_true",
        help="also change the passphrase; the new one is read on stdin",
    )
    rotate.set_defaults(handler=cmd_vault_rotate)


def _read_stdin_value(prompt: str) -> str:
    """A value from stdin: hidden prompt on a terminal, else the input without its final newline."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    value = sys.stdin.read()
    return value[:-1] if value.endswith("\n") else value


VaultWork = Callable[[Vault, LoadedConfig, AuditLog], Awaitable[int]]
# Changes of the vault are admin actions of the highest level in the action ledger too.
VAULT_LEVEL = SecurityLevel.CRITICAL
# Who the audit log names for vault commands: whoever runs the CLI on this host.
CLI_ACTOR = "operator:cli"


_CHANGES = frozenset({"set", "delete", "rotate"})


def _with_vault(args: argparse.Namespace, work: VaultWork) -> int:
    """Open the configured vault and the audit log, run ``work``, map errors to exit codes."""
    return run_command(_open_and_run(args, work))


async def _open_and_run(args: argparse.Namespace, work: VaultWork) -> int:
    loaded = load_config(config_path(args.config))
    if loaded.config.security.vault_key is None:
        return fail(
            'security.vault_key: not set; add vault_key = "file:./data/vault.key" '
            "(switchboard init writes one)",
            EXIT_BAD_CONFIG,
        )
    redactor = SecretRedactor()
    db = await connect_database(loaded, redactor=redactor)
    try:
        vault = await open_vault(loaded, db=db, redactor=redactor)
        if vault is None:  # checked above; kept for the type checker
            return fail("security.vault_key: not set", EXIT_BAD_CONFIG)
        # The redactor knows the passphrase by now, so it can never reach a record.
        audit = AuditLog(AuditRepository(db), redact=redactor.redact)
        approvals = ApprovalService(
            ActionRepository(db),
            policy=lambda: ApprovalPolicy.from_section(loaded.config.security),
            audit=audit,
        )
        if args.vault_command not in _CHANGES:
            return await work(vault, loaded, audit)
        details = {"name": getattr(args, "name", None)}
        async with operator_action(
            approvals,
            f"vault.{args.vault_command}",
            level=VAULT_LEVEL,
            actor=CLI_ACTOR,
            details=details,
        ):
            return await work(vault, loaded, audit)
    finally:
        await db.close()


def cmd_vault_set(args: argparse.Namespace) -> int:
    """``vault set NAME`` (value on stdin)."""
    value = _read_stdin_value(f"value for {args.name}: ")
    if not value:
        return fail("no value on stdin; nothing was stored", EXIT_FAILED)

    async def work(vault: Vault, _: LoadedConfig, audit: AuditLog) -> int:
        await vault.set(args.name, value)
        await audit.append("vault.set", actor=CLI_ACTOR, data={"name": args.name})
        print(f"stored {args.name}")
        return EXIT_OK

    return _with_vault(args, work)


def cmd_vault_get(args: argparse.Namespace) -> int:
    """``vault get NAME``: the clear value on stdout."""

    async def work(vault: Vault, _: LoadedConfig, audit: AuditLog) -> int:
        value = await vault.get(args.name)
        # Recorded before the value is shown: a reveal that is not audited never happens.
        await audit.append("vault.get", actor=CLI_ACTOR, data={"name": args.name})
        print(value)
        return EXIT_OK

    return _with_vault(args, work)


def cmd_vault_list(args: argparse.Namespace) -> int:
    """``vault list [--json]``: names only."""

    async def work(vault: Vault, _: LoadedConfig, __: AuditLog) -> int:
        names = await vault.list()
        print(json.dumps(names) if args.json else "\n".join(names))
        return EXIT_OK

    return _with_vault(args, work)


def cmd_vault_delete(args: argparse.Namespace) -> int:
    """``vault delete NAME``."""

    async def work(vault: Vault, _: LoadedConfig, audit: AuditLog) -> int:
        await vault.delete(args.name)
        await audit.append("vault.delete", actor=CLI_ACTOR, data={"name": args.name})
        print(f"deleted {args.name}")
        return EXIT_OK

    return _with_vault(args, work)


def cmd_vault_rotate(args: argparse.Namespace) -> int:
    """``vault rotate [--new-passphrase]``: atomic; a crash midway loses nothing."""
    new_passphrase: str | None = None
    if args.new_passphrase:
        new_passphrase = _read_stdin_value("new vault passphrase: ").strip()
        if not new_passphrase:
            return fail("no new passphrase on stdin; nothing was changed", EXIT_FAILED)

    async def work(vault: Vault, loaded: LoadedConfig, audit: AuditLog) -> int:
        key_file = _key_file(loaded)
        staged: Path | None = None
        if new_passphrase is not None and key_file is not None:
            # Stage the new passphrase before the database commit: if we die between the
            # commit and the rename, the new key is still on disk next to the old one.
            staged = key_file.with_name(key_file.name + ".new")
            _write_private(staged, new_passphrase + "\n")
        try:
            count = await vault.rotate(new_passphrase=new_passphrase)
        except BaseException:
            if staged is not None:
                staged.unlink(missing_ok=True)
            raise
        print(f"re-encrypted {count} secrets under a fresh data key")
        if staged is not None and key_file is not None:
            os.replace(staged, key_file)
            print(f"new passphrase written to {key_file}")
        elif new_passphrase is not None:
            ref = loaded.config.security.vault_key
            print(f"now set {ref} to the new passphrase before the next start", file=sys.stderr)
        # Recorded after the key file is in place: a failing append must not strand the
        # new passphrase in vault.key.new. No key may contain "passphrase" (it is masked).
        await audit.append(
            "vault.rotate",
            actor=CLI_ACTOR,
            data={"reencrypted": count, "new_vault_key": new_passphrase is not None},
        )
        return EXIT_OK

    return _with_vault(args, work)


def _key_file(loaded: LoadedConfig) -> Path | None:
    ref = loaded.config.security.vault_key
    if ref is None or ref.scheme != "file":
        return None
    path = Path(ref.target).expanduser()
    return path if path.is_absolute() else loaded.base_dir / path


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
