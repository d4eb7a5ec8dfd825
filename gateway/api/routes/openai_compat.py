"""``/v1``: the OpenAI-compatible endpoint over the provider manager.

``POST /v1/chat/completions`` is answered by ``gateway.api.openai_hot_path`` (plain ASGI);
the route here documents it in OpenAPI and serves it the same way should the fast path
not take the request. ``GET /v1/models`` and ``GET /v1/models/{id}`` list and look up
models as ``provider/model``. The admin token is the API key (``Authorization: Bearer``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic_core import to_json
from starlette.types import Receive, Scope, Send

from core.errors import ProviderError, SwitchboardError
from gateway.api.deps import RuntimeDep, runtime_of
from gateway.api.fast_body import request_body_schema
from gateway.api.openai_hot_path import OpenAIChatService, OpenAIHotPathMiddleware
from gateway.api.openai_render import error_body, switchboard_error
from gateway.api.openai_wire import ChatCompletionBody

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("switchboard.api")

router = APIRouter(prefix="/v1", tags=["openai"])
_STATE_KEY = "openai_chat"


# --- documentation models (the answers are encoded by gateway.api.openai_render) ----------


class FunctionOut(BaseModel):
    """The function a tool call names, with its arguments as a JSON string."""

    name: str
    arguments: str = Field(examples=['{"city": "Paris"}'])


class ToolCallOut(BaseModel):
    """A tool call the model made."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionOut


class MessageOut(BaseModel):
    """The assistant's message."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[ToolCallOut] | None = Field(default=None, description="absent when none")


class ChoiceOut(BaseModel):
    """The one choice of an answer."""

    index: int = 0
    message: MessageOut
    logprobs: None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"]


class UsageOut(BaseModel):
    """Token counts."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionOut(BaseModel):
    """A ``chat.completion``; ``model`` is ``provider/model`` of who answered."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "chatcmpl-3f2a9c1b0d4e00000001",
                    "object": "chat.completion",
                    "created": 1767225600,
                    "model": "claude/claude-sonnet-4-5",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Hi!", "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
                }
            ]
        }
    )

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: UsageOut


_MODEL_EXAMPLE: dict[str, JsonValue] = {
    "id": "claude/claude-sonnet-4-5",
    "object": "model",
    "created": 0,
    "owned_by": "claude",
}


class ModelOut(BaseModel):
    """One model, as ``provider/model``."""

    model_config = ConfigDict(json_schema_extra={"examples": [_MODEL_EXAMPLE]})

    id: str = Field(examples=["claude/claude-sonnet-4-5"])
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = Field(examples=["claude"], description="the provider's name")


class ModelListOut(BaseModel):
    """Every model of every provider whose listing answered."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"object": "list", "data": [_MODEL_EXAMPLE]}]}
    )

    object: Literal["list"] = "list"
    data: list[ModelOut]


class OpenAIErrorDetail(BaseModel):
    """OpenAI's error object; ``code`` is Switchboard's machine code."""

    message: str
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = Field(examples=["messages[0].content[1].type"])
    code: str | None = Field(examples=["unsupported_value"])


class OpenAIError(BaseModel):
    """Every ``/v1`` error."""

    error: OpenAIErrorDetail


def _errors(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"description": text, "model": OpenAIError} for status, text in statuses.items()
    }


_REQUEST_EXAMPLE = {
    "model": "claude/claude-sonnet-4-5",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is Switchboard?"},
    ],
    "stream": False,
}


def _chat_openapi() -> dict[str, Any]:
    extra = request_body_schema(ChatCompletionBody, namespace="OpenAI")
    extra["requestBody"]["content"]["application/json"]["example"] = _REQUEST_EXAMPLE
    return extra


# --- routes -------------------------------------------------------------------------------


def _service(request: Request) -> OpenAIChatService:
    service: OpenAIChatService = getattr(request.app.state, _STATE_KEY)
    return service


class _Served(Response):
    """A response that hands the request to :class:`OpenAIChatService` when sent."""

    def __init__(self, service: OpenAIChatService, runtime: Runtime, raw: bytes) -> None:
        super().__init__()
        self._serve = service.serve
        self._runtime = runtime
        self._raw = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(self._runtime.manager, self._raw, receive, send)


@router.post(
    "/chat/completions",
    summary="OpenAI Chat Completions over the provider manager",
    response_model=ChatCompletionOut,
    openapi_extra=_chat_openapi(),
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "a chat.completion, or with `stream: true` chat.completion.chunk "
            "events ending in `data: [DONE]`",
        },
        **_errors(
            {
                400: "invalid body or an unsupported field; `param` names it",
                401: "missing or wrong API key (the admin token)",
                404: "unknown provider or model (`provider_not_found`)",
                429: "the provider's rate limit (`Retry-After` when known)",
                502: "the provider failed and no fallback answered",
                503: "the provider is unavailable (circuit open, overloaded)",
            }
        ),
    },
)
async def chat_completions(request: Request) -> Response:
    """``model`` is ``provider/model`` (that provider only) or a model id.

    A model id that exactly one provider lists goes to that provider; any other goes to
    the default provider, then the fallbacks. ``stream: true`` answers server-sent
    ``chat.completion.chunk`` events; with ``stream_options.include_usage`` the last one
    before ``[DONE]`` carries the usage. A failure after the first token ends the stream
    with a ``data: {"error": ...}`` event, never a silently truncated answer.
    """
    return _Served(_service(request), runtime_of(request), await request.body())


def _error_response(exc: SwitchboardError) -> Response:
    status, headers, body = switchboard_error(exc)
    extra = {k.decode(): v.decode() for k, v in headers if k != b"content-type"}
    return Response(body, status_code=status, media_type="application/json", headers=extra)


def _model(provider: str, model: str) -> dict[str, Any]:
    return {"id": f"{provider}/{model}", "object": "model", "created": 0, "owned_by": provider}


@router.get("/models", summary="Every model, as provider/model", response_model=ModelListOut)
async def list_models(runtime: RuntimeDep) -> Response:
    """Every provider's (cached) listing; a provider whose listing fails is left out."""
    data: list[dict[str, Any]] = []
    for name, models in (await runtime.manager.all_models()).items():
        if isinstance(models, ProviderError):
            log.warning(
                "event=model_listing_failed provider=%s code=%s problem=%r",
                name,
                models.code,
                models.message,
            )
            continue
        data.extend(_model(name, model) for model in models)
    return Response(to_json({"object": "list", "data": data}), media_type="application/json")


@router.get(
    "/models/{model_id:path}",
    summary="One model (OpenAI SDK models.retrieve)",
    response_model=ModelOut,
    responses=_errors({404: "no provider lists this model (`model_not_found`)"}),
)
async def retrieve_model(model_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """``provider/model``, or a plain id that some provider lists (the first one answers)."""
    manager = runtime.manager
    head, slash, rest = model_id.partition("/")
    try:
        if slash and head in manager.names() and rest in await manager.list_models(head):
            return Response(to_json(_model(head, rest)), media_type="application/json")
        owners = await _service(request).router.owners(manager, model_id)
    except SwitchboardError as exc:
        return _error_response(exc)
    if owners:
        return Response(to_json(_model(owners[0], model_id)), media_type="application/json")
    message = f"model {model_id!r} is not listed by any provider: GET /v1/models lists them"
    body = error_body(message, status=404, code="model_not_found", param="model")
    return Response(body, status_code=404, media_type="application/json")


def install_openai_compat(app: FastAPI, *, runtime_source: Callable[[], Runtime | None]) -> None:
    """Add ``/v1`` to ``app``: its fast-path middleware (inside the admin-token check, so
    call this before adding that one) and its routes."""
    service = OpenAIChatService()
    setattr(app.state, _STATE_KEY, service)
    app.add_middleware(OpenAIHotPathMiddleware, service=service, runtime_source=runtime_source)
    app.include_router(router)
