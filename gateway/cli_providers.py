"""``switchboard providers list|health|models [NAME]``: the provider manager's view.

Built from the same config, database and vault as the running gateway, and printed with the
same view functions as the API, so the two always agree.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.cli_support import EXIT_FAILED, EXIT_OK, run_command
from gateway.config_loader import config_path, load_config
from gateway.provider_views import health_view, model_listing, provider_views
from gateway.redaction import SecretRedactor
from gateway.runtime import Runtime


def add_provider_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``providers`` and its sub-commands."""
    providers = commands.add_parser("providers", help="configured LLM providers")
    sub = providers.add_subparsers(dest="providers_command", metavar="ACTION", required=True)
    for name, handler, help_text in (
        ("list", _list, "every provider (never a key)"),
        ("health", _health, "probe every provider (model listing, never a chat)"),
        ("models", _models, "model ids of one provider, or provider/model ids of all"),
    ):
        parser = sub.add_parser(name, parents=[common], help=help_text)
        parser.add_argument("--json", action="store_true", help="print JSON, as the API answers")
        if name == "models":
            parser.add_argument("name", nargs="?", help="one provider")
        parser.set_defaults(handler=_command(handler))


Work = Callable[[Runtime, argparse.Namespace], Awaitable[int]]


def _command(work: Work) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        return run_command(_with_runtime(args, work))

    return handler


async def _with_runtime(args: argparse.Namespace, work: Work) -> int:
    loaded = load_config(config_path(args.config))
    runtime = await Runtime.open(loaded, redactor=SecretRedactor(), role="cli")
    try:
        return await work(runtime, args)
    finally:
        await runtime.close()


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


async def _list(runtime: Runtime, args: argparse.Namespace) -> int:
    views = await provider_views(runtime.providers)
    if args.json:
        _print_json(views)
        return EXIT_OK
    for view in views:
        mark = "*" if view["is_default"] else " "
        health = {True: "healthy", False: "UNHEALTHY", None: "unknown"}[view["healthy"]]
        model = view["default_model"] or "-"
        name, type_name, url = view["name"], view["type"], view["base_url"]
        print(f"{mark} {name:<16} {type_name:<18} {model:<24} {health:<9} {url}")
    return EXIT_OK


async def _health(runtime: Runtime, args: argparse.Namespace) -> int:
    health = await health_view(runtime.manager)
    if args.json:
        _print_json(health)
    else:
        for name, status in health.items():
            if status["healthy"]:
                print(f"{name:<16} healthy   {status['latency_ms']:.1f} ms")
            else:
                print(f"{name:<16} UNHEALTHY {status.get('error', '')}")
    return EXIT_OK if all(s["healthy"] for s in health.values()) else EXIT_FAILED


async def _models(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.name:
        listing: dict[str, Any] = {
            "provider": args.name,
            "models": await runtime.manager.list_models(args.name),
        }
        lines = listing["models"]
    else:
        listing = await model_listing(runtime.manager)
        lines = listing["models"] + [f"# {n}: {e}" for n, e in listing["errors"].items()]
    if args.json:
        _print_json(listing)
    else:
        print("\n".join(lines))
    return EXIT_OK if not listing.get("errors") else EXIT_FAILED
