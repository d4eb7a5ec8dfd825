"""``switchboard usage``: tokens and provider calls against the ``[budgets]`` limits."""

from __future__ import annotations

import argparse
from typing import Any

from core.budgets import BudgetGuard
from core.storage.usage_repo import UsageRepository
from gateway.cli_support import EXIT_BAD_CONFIG, EXIT_OK, fail, run_command
from gateway.config_loader import config_path, load_config
from gateway.redaction import SecretRedactor
from gateway.runtime import connect_database
from gateway.usage_views import CountsView, LimitsView, ScopeView, UsageView, usage_view


def add_usage_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``usage``."""
    usage = commands.add_parser(
        "usage",
        parents=[common],
        help="usage today and this month (UTC) per user and conversation, against the budgets",
    )
    usage.add_argument("--user", metavar="U", help="one identity, e.g. telegram:123456")
    usage.add_argument("--conversation", metavar="C", help="one conversation, e.g. api:alice")
    usage.add_argument("--top", type=int, default=10, metavar="N", help="without a filter: top N")
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(handler=cmd_usage)


def cmd_usage(args: argparse.Namespace) -> int:
    """``usage [--user U] [--conversation C] [--top N] [--json]``."""
    if args.top < 1:
        return fail("--top: must be at least 1", EXIT_BAD_CONFIG)
    for flag, value in (("--user", args.user), ("--conversation", args.conversation)):
        if value is not None and ":" not in value:
            return fail(f"{flag}: {value!r} must be of the form platform:id", EXIT_BAD_CONFIG)
    return run_command(_usage(args))


async def _usage(args: argparse.Namespace) -> int:
    # Only the database and the config's limits: neither the vault nor the providers.
    loaded = load_config(config_path(args.config))
    db = await connect_database(loaded, redactor=SecretRedactor())
    try:
        guard = BudgetGuard(UsageRepository(db), settings=lambda: loaded.config.budgets)
        report = await guard.report(user=args.user, conversation=args.conversation, top=args.top)
    finally:
        await db.close()
    view = usage_view(report)
    if args.json:
        print(view.model_dump_json())
    else:
        for line in usage_lines(view):
            print(line)
    return EXIT_OK


def usage_lines(view: UsageView) -> list[str]:
    """The report as text: one block per user and conversation."""
    lines = [f"UTC day {view.day} (resets {view.day_resets_at}), month {view.month}"]
    if not view.users and not view.conversations:
        lines.append("no usage recorded this month")
    for user in view.users:
        lines.extend(_block(f"user {user.user}", user))
    for conversation in view.conversations:
        lines.extend(_block(f"conversation {conversation.conversation}", conversation))
    return lines


def _block(title: str, scope: ScopeView) -> list[str]:
    marker = "  [budget used up]" if scope.exhausted else ""
    return [
        f"{title}{marker}",
        f"  today: {_counts(scope.today)}; {_limit(scope, 'tokens_per_day')}; "
        f"{_limit(scope, 'requests_per_day')}",
        f"  month: {_counts(scope.month)}; {_limit(scope, 'tokens_per_month')}",
    ]


def _counts(counts: CountsView) -> str:
    return (
        f"{counts.total_tokens:,} tokens ({counts.input_tokens:,} in, "
        f"{counts.output_tokens:,} out), {counts.requests:,} requests"
    )


def _limit(scope: ScopeView, name: str) -> str:
    limits: LimitsView = scope.limits
    value = getattr(limits, name)
    if value is None:
        return f"{name}: no limit"
    return f"{name}: {value:,} ({getattr(scope.remaining, name):,} left)"
