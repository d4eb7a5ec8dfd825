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

import httpx

from core.providers._openai_chat import ChatCompletionsAPI, Dialect
from core.providers.base import ProviderOptions

OPENAI_COMPATIBLE = Dialect(
    type_name="openai_compatible",
    chat_path="/chat/completions",
    models_path="/models",
    max_tokens_field="max_tokens",
    ask_stream_usage=True,
)


def OpenAICompatibleProvider(
    options: ProviderOptions, client: httpx.AsyncClient
) -> ChatCompletionsAPI:
    """Any OpenAI-shaped Chat Completions server, in this module's dialect."""
    return ChatCompletionsAPI(options, client, OPENAI_COMPATIBLE)
