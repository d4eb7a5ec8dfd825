"""The Bot API's wire rules for the fake in ``telegram_api``: request decoding, error bodies,
HTML and MarkdownV2 parsing, the entities Telegram puts on user text, ``reply_markup`` checks,
and the record the fake keeps of each message the bot sent.

Text lengths and entity offsets are UTF-16 code units, as the Bot API counts them (an emoji
outside the BMP is two); byte offsets in parse errors are UTF-8 bytes, as Telegram reports them.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
CHAT_ACTIONS = frozenset(
    {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice"}
    | {"upload_document", "choose_sticker", "find_location", "record_video_note"}
    | {"upload_video_note"}
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
DEFAULT_DESCRIPTIONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
DEFAULT_DESCRIPTIONS |= {403: "Forbidden: bot was blocked by the user", 409: "Conflict"}
DEFAULT_DESCRIPTIONS |= {500: "Internal Server Error", 502: "Bad Gateway"}

# aiogram sends every value as a form string; these are the ones the fake reads as typed values
_JSON_FIELDS = frozenset(
    {"reply_markup", "reply_parameters", "allowed_updates", "entities", "link_preview_options"}
)
_INT_FIELDS = frozenset(
    {"chat_id", "message_id", "offset", "limit", "timeout", "message_thread_id"}
    | {"reply_to_message_id", "cache_time", "max_connections"}
)
_BOOL_FIELDS = frozenset(
    {"show_alert", "drop_pending_updates", "disable_notification", "protect_content"}
    | {"allow_sending_without_reply"}
)


class ApiError(Exception):
    """An error answer: ``{"ok": false, "error_code", "description", "parameters"?}``."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.retry_after = status, description, retry_after

    def body(self) -> dict[str, Any]:
        """The JSON body the real API sends with this error."""
        body = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    """A 400 with Telegram's ``Bad Request: ...`` description."""
    return ApiError(400, f"Bad Request: {detail}")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the Bot API's unit for text lengths and entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def decode_params(content_type: str, body: bytes, query: Mapping[str, str]) -> dict[str, Any]:
    """A method's parameters from the query string and a urlencoded or JSON body."""
    raw: dict[str, Any] = dict(query)
    if content_type.startswith("multipart/form-data"):
        # aiogram sends multipart only with files, and none of the served methods takes one
        raise bad_request("the fake serves no file uploads")
    try:
        if content_type.startswith("application/json"):
            raw.update(json.loads(body or b"{}"))
        elif body:
            raw.update(parse_qsl(body.decode(), keep_blank_values=True))
    except ValueError as exc:
        raise bad_request("can't parse request") from exc
    return {key: _typed(key, value) for key, value in raw.items()}


def _typed(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            what = "reply keyboard markup" if key == "reply_markup" else key
            raise bad_request(f"can't parse {what} JSON object") from exc
    if key in _INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            return value  # chat_id may be "@channelusername"
    return value.lower() in ("true", "1") if key in _BOOL_FIELDS else value


# --- formatting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """Text as a user sees it once ``parse_mode`` markup is parsed, with its entities.

    ``source`` is the marked-up text where the fake does not derive entities (MarkdownV2), so
    that an edit changing only the formatting still counts as a change.
    """

    text: str
    entities: tuple[dict[str, Any], ...] = ()
    source: str = ""


def render(text: str, parse_mode: str | None, entities: Any = None) -> Rendered:
    """Parse ``text`` the way the Bot API does for ``parse_mode`` (or take explicit entities)."""
    mode = (parse_mode or "").lower()
    if not mode:
        return Rendered(text, tuple(entities or ()))
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return Rendered(text, source=text)  # legacy Markdown is not modelled
    raise bad_request(f"unsupported parse_mode {parse_mode!r}")


def _cannot_parse(detail: str, text: str = "", index: int | None = None) -> ApiError:
    where = "" if index is None else f" at byte offset {len(text[:index].encode())}"
    return bad_request(f"can't parse entities: {detail}{where}")


class _Output:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += utf16_len(text)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        if self.length > start:  # Telegram drops empty entities
            length = self.length - start
            self.entities.append({"type": kind, "offset": start, "length": length, **extra})

    def result(self) -> Rendered:
        ordered = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return Rendered("".join(self.parts), tuple(ordered))


_HTML_TAGS = {
    **dict.fromkeys(("b", "strong"), "bold"),
    **dict.fromkeys(("i", "em"), "italic"),
    **dict.fromkeys(("u", "ins"), "underline"),
    **dict.fromkeys(("s", "strike", "del"), "strikethrough"),
    **dict.fromkeys(("span", "tg-spoiler"), "spoiler"),
    **{"a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote"},
    "tg-emoji": "custom_emoji",
}
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTR = re.compile(r"""([A-Za-z][\w-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")
_CHAR_REF = re.compile(r"&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|quot);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _char_ref(ref: str) -> str:
    if ref in _NAMED:
        return _NAMED[ref]
    code = int(ref[2:], 16) if ref.startswith("#x") else int(ref[1:])
    return chr(code) if 0 < code <= 0x10FFFF else "\ufffd"


def _parse_html(text: str) -> Rendered:
    out = _Output()
    stack: list[tuple[str, int, dict[str, str]]] = []
    i = 0
    while i < len(text):
        if text[i] == "&":
            ref = _CHAR_REF.match(text, i)
            out.add(_char_ref(ref.group(1)) if ref else "&")  # unknown names stay literal
            i = ref.end() if ref else i + 1
            continue
        if text[i] != "<":
            j = min((k for k in (text.find("<", i), text.find("&", i)) if k >= 0), default=-1)
            out.add(text[i:j] if j >= 0 else text[i:])
            i = j if j >= 0 else len(text)
            continue
        end = text.find(">", i)
        if text.startswith("</", i):
            if end < 0:
                raise _cannot_parse("Unclosed end tag", text, i)
            if not stack:
                raise _cannot_parse("Unexpected end tag", text, i)
            name = text[i + 2 : end].strip().lower()
            opened, start, attrs = stack.pop()
            if name != opened:
                at = len(text[:i].encode())
                found = f'expected "</{opened}>", found "</{name}>"'
                raise bad_request(
                    f"can't parse entities: Unmatched end tag at byte offset {at}, {found}"
                )
            _close_html(out, opened, start, attrs, stack)
            i = end + 1
            continue
        match = _TAG_NAME.match(text, i + 1)  # Telegram names the tag before seeking its end
        name = match.group(0).lower() if match else ""
        if name not in _HTML_TAGS:
            raise _cannot_parse(f'Unsupported start tag "{name}"', text, i)
        if end < 0:
            raise _cannot_parse("Unclosed start tag", text, i)
        attrs = {
            key.lower(): html.unescape(value.strip("\"'"))
            for key, value in _ATTR.findall(text, i + 1 + len(name), end)
        }
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _cannot_parse('Tag "span" must have class "tg-spoiler"', text, i)
        stack.append((name, out.length, attrs))
        i = end + 1
    if stack:
        raise _cannot_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


def _close_html(
    out: _Output, name: str, start: int, attrs: dict[str, str], stack: list[Any]
) -> None:
    if name == "code" and stack and stack[-1][0] == "pre":
        # <pre><code class="language-x"> is one pre entity with a language
        if language := attrs.get("class", "").removeprefix("language-"):
            stack[-1][2]["language"] = language
        return
    wanted = {"a": ("url", "href"), "tg-emoji": ("custom_emoji_id", "emoji-id")}
    wanted["pre"] = ("language", "language")
    extra = {}
    if name in wanted and wanted[name][1] in attrs:
        extra[wanted[name][0]] = attrs[wanted[name][1]]
    elif name in ("a", "tg-emoji"):
        return  # a link without href, an emoji without id: plain text
    expandable = name == "blockquote" and "expandable" in attrs
    out.entity("expandable_blockquote" if expandable else _HTML_TAGS[name], start, **extra)


_MD_PAIRS = ("```", "__", "||", "*", "_", "~", "`")  # longest first
_MD_NAMES = {"```": "Pre", "`": "Code", "*": "Bold", "_": "Italic", "__": "Underline"}
_MD_NAMES |= {"~": "Strikethrough", "||": "Spoiler", "[": "TextUrl"}
_MD_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")


def _unescaped(text: str, target: str, start: int) -> int:
    """Index of the first ``target`` at or after ``start`` not escaped by a backslash, or -1."""
    i = start
    while i < len(text) and not text.startswith(target, i):
        i += 2 if text[i] == "\\" else 1
    return i if i < len(text) else -1


def _parse_markdown_v2(text: str) -> Rendered:
    """Check MarkdownV2 as the API does (escapes, reserved characters, closed markers); the
    fake keeps the plain text but derives no entities from it."""
    plain: list[str] = []
    opened: dict[str, int] = {}  # marker -> where it opened
    i = 0
    while i < len(text):
        ch, marker = text[i], next((m for m in _MD_PAIRS if text.startswith(m, i)), "")
        if ch == "\\" and i + 1 < len(text):
            plain.append(text[i + 1])
            i += 2
        elif marker in ("```", "`"):
            close = _unescaped(text, marker, i + len(marker))
            if close < 0:
                raise _cannot_parse(f"Can't find end of {_MD_NAMES[marker]} entity", text, i)
            body = text[i + len(marker) : close]
            first, newline, rest = body.partition("\n")
            if marker == "```" and newline and first and " " not in first:
                body = rest  # the first line names the language
            plain.append(re.sub(r"\\([`\\])", r"\1", body))
            i = close + len(marker)
        elif marker:
            if opened.pop(marker, None) is None:
                opened[marker] = i
            i += len(marker)
        elif ch == "[":
            opened["["] = i
            i += 1
        elif ch == "]" and "[" in opened:
            del opened["["]
            if text.startswith("(", i + 1):
                close = _unescaped(text, ")", i + 2)
                if close < 0:
                    raise _cannot_parse("Can't find end of a URL", text, i)
                i = close
            i += 1
        elif ch == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # a blockquote line
        elif ch in _MD_RESERVED:
            detail = f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            raise bad_request(f"can't parse entities: {detail}")
        else:
            plain.append(ch)
            i += 1
    if opened:
        marker, index = min(opened.items(), key=lambda item: item[1])
        raise _cannot_parse(f"Can't find end of {_MD_NAMES[marker]} entity", text, index)
    return Rendered("".join(plain), source=text)


def checked_text(params: Mapping[str, Any], *, too_long: str) -> Rendered:
    """A sendMessage or editMessageText text, parsed, refused when empty or too long."""
    rendered = render(params.get("text", ""), params.get("parse_mode"), params.get("entities"))
    if not rendered.text.strip():
        raise bad_request("message text is empty")
    if utf16_len(rendered.text) > MAX_TEXT:
        raise bad_request(too_long)
    return rendered


# --- user text and keyboards ---------------------------------------------------------------

_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z][A-Za-z0-9_]{3,31})?")
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}(?![\w])")
_BUTTON_ACTIONS = frozenset(
    {"url", "callback_data", "web_app", "login_url", "switch_inline_query", "pay"}
    | {"switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text"}
    | {"callback_game"}
)


def auto_entities(text: str) -> list[dict[str, Any]]:
    """The ``bot_command`` and ``mention`` entities Telegram attaches to what a user types."""
    entities: list[dict[str, Any]] = []
    command = _COMMAND.match(text)
    if command:
        entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(command[0])})
    for mention in _MENTION.finditer(text):
        if command is None or mention.start() >= command.end():
            offset = utf16_len(text[: mention.start()])
            entities.append({"type": "mention", "offset": offset, "length": utf16_len(mention[0])})
    return entities


def check_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Refuse the markups the real API refuses; an inline button's callback_data is 1-64 bytes."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return markup  # reply keyboards, remove_keyboard, force_reply: taken as sent
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    for button in (button for row in rows for button in row):
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise bad_request("can't parse inline keyboard button: Text is missing")
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
            raise bad_request("BUTTON_DATA_INVALID")
        if not _BUTTON_ACTIONS & button.keys():
            detail = "Text buttons are unallowed in the inline keyboard"
            raise bad_request(f"can't parse inline keyboard button: {detail}")
    return markup


# --- what the fake keeps -------------------------------------------------------------------


@dataclass(frozen=True)
class MessageVersion:
    """What a sent message looked like before an edit."""

    text: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None


@dataclass
class SentMessage:
    """A message the bot sent: its current state, the versions before each edit, deleted or not.

    ``text`` is what the bot sent (markup included); ``plain`` is what the user reads.
    """

    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    rendered: Rendered
    reply_markup: dict[str, Any] | None
    reply_to: int | None
    message_thread_id: int | None
    date: int
    edit_date: int | None = None
    edits: list[MessageVersion] = field(default_factory=list)
    deleted: bool = False

    @property
    def plain(self) -> str:
        """The text as the user reads it, markup parsed away."""
        return self.rendered.text

    @property
    def buttons(self) -> list[list[dict[str, Any]]]:
        """The inline keyboard's rows of buttons (empty without one)."""
        return list((self.reply_markup or {}).get("inline_keyboard", []))
