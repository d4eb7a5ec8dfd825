"""Canonical JSON: one byte-exact text per value, so hashes of it can be compared."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept as is; ``NaN`` and infinities refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 bytes of ``text``, as hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
