"""The ``openai_compatible`` provider: any server that speaks OpenAI's Chat Completions.

vLLM, LM Studio, llama.cpp's server, OpenRouter, Groq and others. What differs from ``openai``:

* ``base_url`` is required and includes ``/v1`` (``http://127.0.0.1:8000/v1``).
* The key is optional: without one no ``Authorization`` header is sent (local servers).
* ``options.headers`` go on every request (OpenRouter's ``HTTP-Referer`` and ``X-Title``).
* ``max_tokens``, not ``max_completion_tokens``: it is the field these servers accept.
* Streams ask for usage with ``stream_options.include_usage``; a server that ignores it and
  sends no usage chunk gets ``Usage()`` zeros in ``StreamDone`` rather than a failure, since
  the answer itself is complete.
* Tool call ids are passed through unchanged: the server's rules are not known.
* Error bodies vary by server; OpenAI's nested shape and the flat ``{"object": "error", ...}``
  of vLLM are both understood (see ``_openai_chat``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from core.providers._openai_chat import ChatCompletionsAPI, Dialect
from core.providers.base import ProviderOptions
from core.types import ChatRequest, ChatResult, HealthStatus, StreamEvent

OPENAI_COMPATIBLE = Dialect(
    chat_path="/chat/completions",
    models_path="/models",
    max_tokens_field="max_tokens",
    ask_stream_usage=True,
)


class OpenAICompatibleProvider:
    """A self-hosted or third-party server with OpenAI's Chat Completions wire format."""

    type_name = "openai_compatible"

    def __init__(self, options: ProviderOptions, client: httpx.AsyncClient) -> None:
        self.name = options.name
        self._api = ChatCompletionsAPI(options, client, OPENAI_COMPATIBLE)

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One complete answer."""
        return await self._api.chat(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Text deltas as they arrive, complete tool calls, then ``StreamDone``."""
        return self._api.stream(request)

    async def list_models(self) -> list[str]:
        """The ids ``GET /models`` lists."""
        return await self._api.list_models()

    async def health_check(self) -> HealthStatus:
        """A timed ``GET /models``; never a chat call."""
        return await self._api.health_check()

    async def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""
