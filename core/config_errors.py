"""Turning pydantic's validation errors into ``KEY.PATH: what is wrong`` lines."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from core.config import GatewayConfig, SecretRef
from core.errors import ConfigError
from core.suggest import did_you_mean

# Error types whose offending input is safe and useful to show.
_SHOW_INPUT = frozenset(
    {
        "literal_error",
        "enum",
        "int_parsing",
        "int_type",
        "float_parsing",
        "float_type",
        "bool_parsing",
        "bool_type",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
    }
)


def key_path(loc: tuple[int | str, ...]) -> str:
    """``("routing", "fallbacks", 1)`` -> ``routing.fallbacks[1]``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def config_errors(exc: ValidationError, root: type[BaseModel] = GatewayConfig) -> list[ConfigError]:
    """One ``ConfigError`` per problem pydantic found, each naming its key path."""
    errors: list[ConfigError] = []
    for err in exc.errors(include_url=False):
        loc = _public_loc(err["loc"], root)
        path = key_path(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(root, loc[:-1])
            known = list(parent.model_fields) if parent else []
            hint = did_you_mean(str(loc[-1]), known)
            problem = f"unknown key{hint}"
            if not hint and known:
                problem += f" (known keys: {', '.join(known)})"
        elif kind == "missing":
            problem = "required key is missing"
        else:
            message = str(err["msg"])
            problem = message.removeprefix("Value error, ")
            if kind in _SHOW_INPUT:
                problem += f" (got {err['input']!r})"
        errors.append(ConfigError(path, problem))
    return errors


def _public_loc(loc: tuple[int | str, ...], root: type[BaseModel]) -> tuple[int | str, ...]:
    """Drop pydantic's internal location parts (union branches, function validators)."""
    cleaned: list[int | str] = []
    for part in loc:
        if isinstance(part, str) and (
            part.startswith("function-") or part in {"SecretRef", "str", "none", "None"}
        ):
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model class found at ``loc``, following fields, dict values and lists."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (dict, tuple, list):
            args = typing.get_args(current)
            current = args[-1] if args else None
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel) and current is not SecretRef:
        return current
    return None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; other annotations unchanged."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation
