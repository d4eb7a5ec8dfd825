"""``switchboard approvals list|approve|reject``: operator decisions, audited as the operator."""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.types import ApprovalStatus
from gateway.api.routes.approvals import approval_view
from gateway.cli_support import EXIT_OK, run_command
from gateway.config_loader import config_path, load_config
from gateway.redaction import SecretRedactor
from gateway.runtime import Runtime

CLI_OPERATOR = "operator:cli"


def add_approval_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``approvals`` and its sub-commands."""
    approvals = commands.add_parser("approvals", help="pending human approvals")
    sub = approvals.add_subparsers(dest="approvals_command", metavar="ACTION", required=True)
    list_ = sub.add_parser("list", parents=[common], help="approvals (pending by default)")
    list_.add_argument(
        "--status", default="pending", choices=["pending", "approved", "rejected", "expired", "all"]
    )
    list_.add_argument("--json", action="store_true")
    list_.set_defaults(handler=lambda args: run_command(_list(args)))
    for name, approve in (("approve", True), ("reject", False)):
        parser = sub.add_parser(name, parents=[common], help=f"{name} an approval by id")
        parser.add_argument("id")
        parser.set_defaults(handler=_decider(approve))


def _decider(approve: bool) -> Any:
    def handler(args: argparse.Namespace) -> int:
        return run_command(_decide(args, approve=approve))

    return handler


async def _open(args: argparse.Namespace) -> Runtime:
    loaded = load_config(config_path(args.config))
    return await Runtime.open(loaded, redactor=SecretRedactor(), role="cli")


async def _list(args: argparse.Namespace) -> int:
    runtime = await _open(args)
    try:
        statuses = [] if args.status == "all" else [ApprovalStatus(args.status)]
        approvals = await runtime.approvals.list_approvals(statuses)
        views = [
            approval_view(a, await runtime.approvals.get_action(a.action_id)) for a in approvals
        ]
    finally:
        await runtime.close()
    if args.json:
        print(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        return EXIT_OK
    for view in views:
        arguments = json.dumps(view.arguments, ensure_ascii=False)
        expires = f"{view.expires_at:%Y-%m-%d %H:%M:%S}Z"
        print(
            f"{view.id}  {view.status.value:<8} {view.level.value:<8} {view.tool or '-'} "
            f"{arguments}  requested by {view.requested_by or '-'}, expires {expires}"
        )
    if not views:
        print(f"no {args.status} approvals" if args.status != "all" else "no approvals")
    return EXIT_OK


async def _decide(args: argparse.Namespace, *, approve: bool) -> int:
    runtime = await _open(args)
    try:
        approval = await runtime.approvals.decide(args.id, approve=approve, decider=CLI_OPERATOR)
    finally:
        await runtime.close()
    print(f"{approval.id}: {approval.status.value} by {approval.decided_by}")
    if approve:
        # This process has no channel to answer in: the running gateway's sweeper runs the
        # action (once, whichever process claims it) and resumes the conversation there.
        print("the gateway runs the action within seconds (or as soon as it starts)")
    return EXIT_OK
