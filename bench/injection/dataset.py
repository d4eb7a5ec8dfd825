"""Attack samples built from the seed folders that the ``spikee`` package ships.

spikee (``pip install --no-deps spikee==0.9.2``; only its data files and plugin modules
are used, none of its heavy dependencies) carries "seed folders": jailbreak templates
with an ``<INSTRUCTION>`` slot, attacker instructions, and benign documents the payload
is injected into. This module rebuilds what ``spikee generate --seed-folder S --format
user-input`` produces with its defaults (payload at the end of each document, delimiter
``"\\nINJECTION_PAYLOAD\\n"``, jailbreaks matched to instructions by language), and the
same entries again through spikee's own obfuscation plugins (base64, hex, homoglyphs,
ASCII smuggling, leetspeak, splats, best-of-n scrambling).

The split is by jailbreak template: ``sha256(template text)`` even -> development half
(rules may be tuned on it), odd -> held-out half (only ever counted, never printed). So
the held-out figures measure attack phrasings that the rules were never shown.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

PACKAGE = "spikee"
SEED_FOLDERS = (
    "seeds-cybersec-2026-01",
    "seeds-sysmsg-extraction-2025-04",
    "seeds-llm-mailbox",
)
PLUGINS = ("base64", "hex", "homoglyph", "ascii_smuggler", "1337", "splat", "best_of_n")
DELIMITER = "\nINJECTION_PAYLOAD\n"


@dataclass(frozen=True)
class Attack:
    """One attack sample and the labels it is reported under."""

    text: str
    split: str  # "dev" | "heldout"
    seed: str
    lang: str
    jailbreak_type: str
    instruction_type: str
    document: str
    plugin: str  # "" for the plain entry


def package_version() -> str:
    """The installed spikee version (raises PackageNotFoundError if missing)."""
    return importlib.metadata.version(PACKAGE)


def datasets_dir() -> Path:
    """Folder of the seed folders inside the installed package."""
    return Path(str(files(PACKAGE) / "data" / "workspace" / "datasets"))


def split_of(template: str) -> str:
    """Deterministic half of a jailbreak template."""
    digest = hashlib.sha256(template.encode()).digest()
    return "dev" if digest[0] % 2 == 0 else "heldout"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _plugin(name: str) -> Any:
    module = importlib.import_module(f"spikee.plugins.{name}")
    from spikee.templates.plugin import Plugin  # type: ignore[import-untyped]

    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, Plugin) and cls.__module__ == module.__name__:
            return cls()
    raise LookupError(f"no plugin class in spikee.plugins.{name}")


def _inject(document: dict[str, Any], payload: str) -> str:
    injected = DELIMITER.replace("INJECTION_PAYLOAD", payload)
    placeholder = document.get("placeholder") or ""
    if placeholder:
        return str(document["document"]).replace(placeholder, injected)
    return f"{document['document']}{injected}"


def _transform(plugin: Any, name: str, payload: str, exclude: list[str] | None) -> str:
    random.seed(f"{name}:{payload}")  # splat and best_of_n draw at random
    result = plugin.transform(payload, exclude_patterns=exclude)
    if isinstance(result, list):
        result = result[0]
    return str(result)


def load_attacks(*, plugins: bool = True) -> list[Attack]:
    """Every attack sample, de-duplicated by text, in a stable order."""
    root = datasets_dir()
    loaded = {name: _plugin(name) for name in PLUGINS} if plugins else {}
    seen: set[str] = set()
    out: list[Attack] = []
    for seed in SEED_FOLDERS:
        for attack in _seed_attacks(root / seed, seed, loaded):
            if attack.text not in seen:
                seen.add(attack.text)
                out.append(attack)
    return out


def _seed_attacks(folder: Path, seed: str, plugins: dict[str, Any]) -> Iterator[Attack]:
    jailbreaks = _jsonl(folder / "jailbreaks.jsonl")
    instructions = _jsonl(folder / "instructions.jsonl")
    documents = _jsonl(folder / "base_user_inputs.jsonl")
    for jailbreak in jailbreaks:
        lang = jailbreak.get("lang", "en")
        split = split_of(jailbreak["text"])
        for instruction in instructions:
            if instruction.get("lang", "en") != lang:
                continue
            payload = jailbreak["text"].replace("<INSTRUCTION>", instruction["instruction"])
            exclude = (
                sorted(
                    {
                        pattern
                        for item in (jailbreak, instruction)
                        for pattern in _as_list(item.get("exclude_from_transformations_regex"))
                    }
                )
                or None
            )
            variants = [("", payload)]
            if lang == "en":
                variants += [
                    (name, _transform(plugin, name, payload, exclude))
                    for name, plugin in plugins.items()
                ]
            for plugin_name, text in variants:
                for document in documents:
                    yield Attack(
                        text=_inject(document, text),
                        split=split,
                        seed=seed,
                        lang=lang,
                        jailbreak_type=jailbreak.get("jailbreak_type", ""),
                        instruction_type=instruction.get("instruction_type", ""),
                        document=document["id"],
                        plugin=plugin_name,
                    )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item) for item in value]
    return [str(value)]
