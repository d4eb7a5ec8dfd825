"""``switchboard audit verify|tail``: check the hash chain, read the newest records."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

from core.security.audit import AuditLog, AuditRecord, record_json
from core.storage.audit_repo import AuditRepository, canonical_json
from gateway.cli_support import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_OK, fail, run_command
from gateway.config_loader import config_path, load_config
from gateway.redaction import SecretRedactor
from gateway.runtime import connect_database

_DEFAULT_TAIL = 20


def add_audit_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``audit`` and its sub-commands."""
    audit = commands.add_parser("audit", help="the tamper-evident audit log")
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = sub.add_parser(
        "verify", parents=[common], help="check the whole hash chain; exit 1 if it is broken"
    )
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_audit_verify)
    tail = sub.add_parser("tail", parents=[common], help="the newest records, oldest first")
    tail.add_argument(
        "-n", type=int, default=_DEFAULT_TAIL, metavar="N", help=f"default {_DEFAULT_TAIL}"
    )
    tail.add_argument("--json", action="store_true")
    tail.set_defaults(handler=cmd_audit_tail)


AuditWork = Callable[[AuditLog], Awaitable[int]]


async def _with_audit(args: argparse.Namespace, work: AuditWork) -> int:
    # Only the database: reading the log needs neither the vault nor the providers.
    loaded = load_config(config_path(args.config))
    db = await connect_database(loaded, redactor=SecretRedactor())
    try:
        return await work(AuditLog(AuditRepository(db)))
    finally:
        await db.close()


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """``audit verify [--json]``: ``ok: N records``, or exit 1 naming the first bad ``seq``."""

    async def work(audit: AuditLog) -> int:
        verdict = await audit.verify()
        if args.json:
            print(
                json.dumps(
                    {
                        "ok": verdict.ok,
                        "count": verdict.count,
                        "first_bad_seq": verdict.first_bad_seq,
                        "problem": verdict.problem,
                    }
                )
            )
            return EXIT_OK if verdict.ok else EXIT_FAILED
        if verdict.ok:
            print(f"ok: {verdict.count} records")
            return EXIT_OK
        return fail(
            f"audit chain broken at seq {verdict.first_bad_seq}: {verdict.problem}", EXIT_FAILED
        )

    return run_command(_with_audit(args, work))


def cmd_audit_tail(args: argparse.Namespace) -> int:
    """``audit tail [-n N] [--json]``: one line per record, oldest first."""
    if args.n < 1:
        return fail("-n: must be at least 1", EXIT_BAD_CONFIG)

    async def work(audit: AuditLog) -> int:
        records = await audit.tail(args.n)
        if args.json:
            print(json.dumps([record_json(r) for r in records], ensure_ascii=False))
        else:
            for record in records:
                print(tail_line(record))
        return EXIT_OK

    return run_command(_with_audit(args, work))


def tail_line(record: AuditRecord) -> str:
    """``seq time kind actor conversation action_id {data}``; ``-`` for an empty field."""
    fields = (record.actor, record.conversation, record.action_id)
    shown = " ".join(value or "-" for value in fields)
    at = record.at.isoformat(timespec="microseconds")
    return f"{record.seq} {at} {record.kind} {shown} {canonical_json(record.data)}"
