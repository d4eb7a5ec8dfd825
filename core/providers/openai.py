"""The ``openai`` provider: OpenAI's Chat Completions API (``POST /v1/chat/completions``).

Quirks of this API that shape the code (the wire itself lives in ``_openai_chat``):

* ``base_url`` includes ``/v1`` (``https://api.openai.com/v1``), as the official SDK takes it;
  the key goes in ``Authorization: Bearer <key>``.
* ``max_completion_tokens`` carries the request's ``max_tokens``: the current API deprecates
  ``max_tokens`` and reasoning models reject it.
* Streams report usage only when asked with ``stream_options: {"include_usage": true}``, on an
  extra chunk with empty ``choices`` just before ``data: [DONE]``.
* Errors are ``{"error": {"message", "type", "param", "code"}}``; ``code`` names a context
  overflow (``context_length_exceeded``) and an overload (``server_is_overloaded``, 503).
  A 429 may carry no ``Retry-After``; then ``x-ratelimit-reset-requests`` /
  ``x-ratelimit-reset-tokens`` (``"6m0s"``) of the exhausted limit give the wait.
* A wrong key is echoed in the 401 message; it is masked before it reaches our errors.
* Tool call ids are at most 40 characters; longer foreign ids are replaced by a hash.
"""

from __future__ import annotations

import hashlib

import httpx

from core.providers._openai_chat import ChatCompletionsAPI, Dialect
from core.providers.base import ProviderOptions

_MAX_ID = 40


def _fits(tool_call_id: str) -> bool:
    return 0 < len(tool_call_id) <= _MAX_ID


def _remap(tool_call_id: str, attempt: int) -> str:
    digest = hashlib.sha256(f"{attempt}:{tool_call_id}".encode()).hexdigest()
    return "call_" + digest[:32]


OPENAI = Dialect(
    type_name="openai",
    chat_path="/chat/completions",
    models_path="/models",
    max_tokens_field="max_completion_tokens",
    ask_stream_usage=True,
    tool_call_id_fits=_fits,
    remap_tool_call_id=_remap,
)


def OpenAIProvider(options: ProviderOptions, client: httpx.AsyncClient) -> ChatCompletionsAPI:
    """OpenAI's Chat Completions API, in this module's dialect."""
    return ChatCompletionsAPI(options, client, OPENAI)
