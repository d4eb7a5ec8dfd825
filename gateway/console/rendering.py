"""Jinja2 filters of the console templates: times, JSON and clipping, all escaped later."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

CLIP_CHARS = 240


def when(value: datetime | str | None) -> str:
    """``2026-11-24 12:00:00 UTC`` for a datetime or an ISO 8601 string; ``–`` for none."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        at = value
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    """Indented JSON (tool arguments), non-ASCII kept readable."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def compact(value: Any, limit: int = CLIP_CHARS) -> str:
    """One-line JSON, clipped."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return clip(text, limit)


def clip(value: Any, limit: int = CLIP_CHARS) -> str:
    """At most ``limit`` characters, with an ellipsis when cut."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short(value: str | None) -> str:
    """The first 8 characters of an id (the full id goes in a title attribute)."""
    return (value or "–")[:8]


def install_filters(env: Environment) -> None:
    """Register the filters on ``env``."""
    env.filters.update(when=when, pretty=pretty, compact=compact, clip=clip, short=short)
