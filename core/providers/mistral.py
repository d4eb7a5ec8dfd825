"""The ``mistral`` provider: Mistral's Chat Completions API (``POST /v1/chat/completions``).

The wire is OpenAI's (see ``_openai_chat``), with these differences:

* ``base_url`` is the bare origin (``https://api.mistral.ai``), as Mistral's SDK takes it;
  the paths carry ``/v1``. The key goes in ``Authorization: Bearer <key>``.
* ``max_tokens``; unknown request fields are rejected with 422 (``extra_forbidden``), so
  ``stream_options`` is never sent: Mistral puts ``usage`` on the last stream chunk (the one
  with ``finish_reason``) unasked.
* Tool call ids must be exactly 9 characters of ``[a-zA-Z0-9]`` (400 ``invalid_function_call``
  otherwise). Ids made by other providers are mapped to 9 alphanumerics derived from their
  SHA-256, so an assistant tool call and its result map alike, in every request of a
  conversation; ids that already fit are kept. Tool results also carry the tool ``name``.
* Extra finish reasons: ``model_length`` (the context ran out: reported as ``length``) and
  ``error``.
* Error bodies are flat, ``{"object": "error", "message", "type", "param", "code"}``, where
  ``message`` may itself be ``{"detail": [...]}`` on a 422; the gateway in front answers
  ``{"message": "Unauthorized"}``, ``{"detail": "Unauthorized"}`` or, on 422, a bare
  ``{"detail": [{"loc", "msg", "type"}]}``. No machine code marks a context overflow, so its
  text decides; "Service tier capacity exceeded" on a 503 is an overload.
* Errors inside a stream are not documented; a chunk in either the flat or OpenAI's error
  shape is treated as one.
"""

from __future__ import annotations

import hashlib
import re

import httpx

from core.providers._openai_chat import ChatCompletionsAPI, Dialect
from core.providers.base import ProviderOptions

_ID_LENGTH = 9
_VALID_ID = re.compile(r"[a-zA-Z0-9]{9}")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def fits_mistral(tool_call_id: str) -> bool:
    """True when Mistral accepts ``tool_call_id`` as it is."""
    return _VALID_ID.fullmatch(tool_call_id) is not None


def mistral_tool_call_id(tool_call_id: str, attempt: int = 0) -> str:
    """9 alphanumerics derived from ``tool_call_id`` (and ``attempt``, to step past a clash)."""
    seed = tool_call_id if attempt == 0 else f"{attempt}:{tool_call_id}"
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    chars = []
    for _ in range(_ID_LENGTH):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


MISTRAL = Dialect(
    type_name="mistral",
    chat_path="/v1/chat/completions",
    models_path="/v1/models",
    max_tokens_field="max_tokens",
    ask_stream_usage=False,
    tool_result_name=True,
    tool_call_id_fits=fits_mistral,
    remap_tool_call_id=mistral_tool_call_id,
)


def MistralProvider(options: ProviderOptions, client: httpx.AsyncClient) -> ChatCompletionsAPI:
    """Mistral's Chat Completions API, in this module's dialect."""
    return ChatCompletionsAPI(options, client, MISTRAL)
