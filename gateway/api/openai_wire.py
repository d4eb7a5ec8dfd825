"""The request body of ``POST /v1/chat/completions`` (OpenAI's Chat Completions API).

The body is parsed in one ``model_validate_json`` pass into the models below, then turned
into our :class:`~core.types.ChatRequest` by :func:`to_chat_request`. What is accepted:

* messages with the roles system, developer (read as system), user, assistant and tool;
  ``content`` as a string or a list of text parts (joined with newlines; an assistant's
  refusal parts count as text); image, audio and file parts are refused with a 400 naming
  the part;
* assistant ``tool_calls`` whose ``function.arguments`` is a JSON string (an object is
  taken as it is; an empty string means no arguments), and tool results by ``tool_call_id``;
* ``tools`` of type function, ``tool_choice`` ``"auto"`` or ``"none"`` (none: no tools are
  sent), ``max_completion_tokens`` (or the older ``max_tokens``), ``temperature``,
  ``stream`` and ``stream_options.include_usage``, ``n`` = 1.

Sampling hints and bookkeeping that change nothing we promise (``top_p``, penalties,
``seed``, ``user``, ``metadata``, ``store`` ...) and fields we do not know are ignored.
Fields whose effect we cannot honour (``stop``, ``logprobs``, ``response_format`` other
than text, audio output, ``n`` > 1 ...) are refused with a 400 that names the field:
silently dropping them would change the answer the caller asked for.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from core.errors import SwitchboardError
from core.types import ChatMessage, ChatRequest, Role, ToolCall, ToolSpec

_IGNORED = "accepted and ignored"
_REFUSED = "not supported: any value but null (or the default) is refused with a 400"


class InvalidRequest(SwitchboardError):
    """A request body the OpenAI-compatible endpoint refuses; ``param`` names the field."""

    code = "invalid_value"
    http_status = 400

    def __init__(self, message: str, *, param: str | None, code: str = "invalid_value") -> None:
        super().__init__(message, code=code)
        self.param = param


class _Wire(BaseModel):
    # Unknown fields are ignored: clients send vendor extensions and newer OpenAI fields.
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Wire):
    """One part of a message's content; only text (and an assistant's refusal) is read."""

    type: str = Field(max_length=64, examples=["text"])
    text: str | None = None
    refusal: str | None = None


class FunctionCallIn(_Wire):
    """The function an earlier assistant message called."""

    name: str = Field(min_length=1, max_length=256)
    arguments: str | dict[str, Any] = Field(default="", description="a JSON object as a string")


class ToolCallIn(_Wire):
    """A tool call of an earlier assistant message."""

    id: str = Field(min_length=1, max_length=256)
    type: str = "function"
    function: FunctionCallIn


class MessageIn(_Wire):
    """One message of the conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = Field(default=None, description=_IGNORED)
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(default=None, max_length=256)
    refusal: str | None = None
    function_call: Any = Field(default=None, description=_REFUSED)
    audio: Any = Field(default=None, description=_REFUSED)


class FunctionSpecIn(_Wire):
    """A function the model may call: name, description, JSON schema of its arguments."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = Field(default=None, description=_IGNORED)


class ToolIn(_Wire):
    """A tool offered to the model; only ``type: "function"`` is supported."""

    type: str = "function"
    function: FunctionSpecIn | None = None


class StreamOptionsIn(_Wire):
    """``include_usage``: one more chunk, with empty ``choices`` and the usage, before [DONE]."""

    include_usage: bool | None = None
    include_obfuscation: bool | None = Field(default=None, description=_IGNORED)


class ChatCompletionBody(_Wire):
    """An OpenAI Chat Completions request; ``model`` is ``provider/model`` or a model id."""

    model: str = Field(min_length=1, max_length=512, examples=["claude/claude-sonnet-4-5"])
    messages: list[MessageIn] = Field(min_length=1, max_length=1000)
    tools: list[ToolIn] | None = Field(default=None, max_length=512)
    tool_choice: str | dict[str, Any] | None = Field(
        default=None, description='"auto" (the default) or "none" (no tools are sent)'
    )
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_tokens: int | None = Field(
        default=None, ge=1, le=1_000_000, description="used when max_completion_tokens is unset"
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool | None = False
    stream_options: StreamOptionsIn | None = None
    n: int | None = Field(default=None, description="only 1")
    user: str | None = Field(default=None, description=_IGNORED)
    top_p: float | None = Field(default=None, description=_IGNORED)
    presence_penalty: float | None = Field(default=None, description=_IGNORED)
    frequency_penalty: float | None = Field(default=None, description=_IGNORED)
    seed: int | None = Field(default=None, description=_IGNORED)
    parallel_tool_calls: bool | None = Field(default=None, description=_IGNORED)
    stop: Any = Field(default=None, description=_REFUSED)
    logit_bias: Any = Field(default=None, description=_REFUSED)
    logprobs: bool | None = Field(default=None, description="only false")
    top_logprobs: int | None = Field(default=None, description="only 0")
    response_format: Any = Field(default=None, description='only {"type": "text"}')
    modalities: list[str] | None = Field(default=None, description='only ["text"]')
    audio: Any = Field(default=None, description=_REFUSED)
    functions: Any = Field(default=None, description=_REFUSED + "; send tools")
    function_call: Any = Field(default=None, description=_REFUSED + "; send tool_choice")
    prediction: Any = Field(default=None, description=_REFUSED)
    web_search_options: Any = Field(default=None, description=_REFUSED)

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk."""
        return bool(self.stream_options is not None and self.stream_options.include_usage)


def _refuse(param: str, message: str, *, code: str = "unsupported_parameter") -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code=code)


def check_supported(body: ChatCompletionBody) -> None:
    """Raise :class:`InvalidRequest` for a field whose effect this gateway cannot honour."""
    if body.n not in (None, 1):
        raise _refuse(
            "n", "only n=1 is supported (one choice per request)", code="unsupported_value"
        )
    if body.stop not in (None, "", []):
        raise _refuse("stop", "stop sequences are not supported by this gateway")
    if body.logit_bias not in (None, {}):
        raise _refuse("logit_bias", "logit_bias is not supported by this gateway")
    if body.logprobs or body.top_logprobs:
        param = "logprobs" if body.logprobs else "top_logprobs"
        raise _refuse(param, "log probabilities are not supported by this gateway")
    if body.response_format is not None and body.response_format != {"type": "text"}:
        raise _refuse(
            "response_format",
            'only {"type": "text"} is supported; JSON mode and structured outputs are not',
            code="unsupported_value",
        )
    if body.modalities is not None and any(m != "text" for m in body.modalities):
        raise _refuse("modalities", 'only ["text"] is supported', code="unsupported_value")
    for param in ("audio", "functions", "function_call", "prediction", "web_search_options"):
        if getattr(body, param) is not None:
            hint = {"functions": "; send tools", "function_call": "; send tool_choice"}
            raise _refuse(param, f"{param} is not supported by this gateway{hint.get(param, '')}")
    if body.tool_choice not in (None, "auto", "none"):
        raise _refuse(
            "tool_choice",
            'only "auto" and "none" are supported (a model cannot be forced to call a tool)',
            code="unsupported_value",
        )


_PART_NAMES = {"image_url": "image", "input_audio": "audio", "file": "file"}


def _text(content: str | list[ContentPart] | None, *, at: str, assistant: bool) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for j, part in enumerate(content):
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type == "refusal" and assistant:
            texts.append(part.refusal or "")
        else:
            what = _PART_NAMES.get(part.type)
            problem = (
                f"{what} input is not supported by this gateway; send text parts only"
                if what
                else f"content parts of type {part.type!r} are not supported; send text parts"
            )
            raise InvalidRequest(
                f"{at}.content[{j}]: {problem}",
                param=f"{at}.content[{j}].type",
                code="unsupported_value",
            )
    return "\n".join(texts)


def _arguments(raw: str | dict[str, Any], *, at: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if not raw.strip():
        return {}
    param = f"{at}.function.arguments"
    try:
        parsed = from_json(raw)
    except ValueError as exc:
        raise InvalidRequest(
            f"{param}: not valid JSON ({exc})", param=param, code="invalid_value"
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"{param}: must be a JSON object", param=param, code="invalid_value")
    return parsed


def _tool_calls(message: MessageIn, *, at: str) -> tuple[ToolCall, ...]:
    calls: list[ToolCall] = []
    for k, call in enumerate(message.tool_calls or ()):
        where = f"{at}.tool_calls[{k}]"
        if call.type != "function":
            raise _refuse(
                f"{where}.type", "only function tool calls are supported", code="unsupported_value"
            )
        calls.append(
            ToolCall(
                id=call.id,
                name=call.function.name,
                arguments=_arguments(call.function.arguments, at=where),
            )
        )
    return tuple(calls)


_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}


def _message(message: MessageIn, index: int) -> ChatMessage:
    at = f"messages[{index}]"
    role = _ROLES.get(message.role)
    if role is None:
        raise _refuse(
            f"{at}.role", "the deprecated 'function' role is not supported; send 'tool' messages"
        )
    if message.audio is not None or message.function_call is not None:
        field = "audio" if message.audio is not None else "function_call"
        raise _refuse(f"{at}.{field}", f"{field} is not supported by this gateway")
    assistant = role is Role.ASSISTANT
    content = _text(message.content, at=at, assistant=assistant)
    if assistant:
        if not content and message.refusal:
            content = message.refusal
        return ChatMessage(role=role, content=content, tool_calls=_tool_calls(message, at=at))
    if role is Role.TOOL and not message.tool_call_id:
        raise InvalidRequest(
            f"{at}.tool_call_id: a tool message needs the id of the tool call it answers",
            param=f"{at}.tool_call_id",
            code="missing_required_parameter",
        )
    if role is Role.TOOL:
        return ChatMessage(role=role, content=content, tool_call_id=message.tool_call_id)
    return ChatMessage(role=role, content=content)


def _tools(body: ChatCompletionBody) -> tuple[ToolSpec, ...]:
    if not body.tools or body.tool_choice == "none":
        return ()
    specs: list[ToolSpec] = []
    for k, tool in enumerate(body.tools):
        if tool.type != "function" or tool.function is None:
            raise _refuse(
                f"tools[{k}].type",
                f"only function tools are supported, not {tool.type!r}",
                code="unsupported_value",
            )
        function = tool.function
        specs.append(
            ToolSpec(
                name=function.name,
                description=function.description or "",
                parameters=function.parameters or {"type": "object"},
            )
        )
    return tuple(specs)


def to_chat_request(body: ChatCompletionBody, *, model: str | None) -> ChatRequest:
    """The body in our conversation model, for ``model`` (the id its provider knows).

    Plain constructors, not ``model_construct``: with pydantic-core doing the checks they
    cost half as much (measured: 9 us against 17 us per message on this machine).
    """
    check_supported(body)
    max_tokens = body.max_completion_tokens or body.max_tokens
    return ChatRequest(
        messages=tuple(_message(m, i) for i, m in enumerate(body.messages)),
        model=model,
        tools=_tools(body),
        max_tokens=max_tokens,
        temperature=body.temperature,
    )


# --- validation errors in OpenAI's terms ------------------------------------------------------


def _field_names() -> frozenset[str]:
    models: tuple[type[BaseModel], ...] = (
        ContentPart,
        FunctionCallIn,
        ToolCallIn,
        MessageIn,
        FunctionSpecIn,
        ToolIn,
        StreamOptionsIn,
        ChatCompletionBody,
    )
    return frozenset(name for model in models for name in model.model_fields)


_FIELDS = _field_names()


def _param(loc: tuple[int | str, ...]) -> str | None:
    """``("messages", 0, "content", "str")`` -> ``messages[0].content``.

    Union members show up in pydantic's locations by their type name; only our field
    names and list indexes are kept.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _FIELDS:
            out += f".{part}" if out else part
    return out or None


def invalid_body(exc: ValidationError) -> InvalidRequest:
    """The first problem of a body that did not validate, naming its field."""
    errors = exc.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return InvalidRequest("the request body is not valid JSON", param=None, code="invalid_json")
    first = errors[0]
    param = _param(tuple(first["loc"]))
    if param is None:
        return InvalidRequest(
            "the request body must be a JSON object", param=None, code="invalid_type"
        )
    if first["type"] == "missing":
        return InvalidRequest(
            f"missing required parameter: '{param}'",
            param=param,
            code="missing_required_parameter",
        )
    code = "invalid_type" if first["type"].endswith("_type") else "invalid_value"
    others = {_param(tuple(e["loc"])) for e in errors} - {param}
    more = f" (and {len(others)} more problems)" if others else ""
    return InvalidRequest(f"{param}: {first['msg']}{more}", param=param, code=code)
