"""Markdown to Telegram HTML (``parse_mode="HTML"``).

Rules from the Bot API "Formatting options": only ``b i u s code pre a blockquote
tg-spoiler`` (and aliases) are tags; every ``<``, ``>`` and ``&`` that is not markup is an
entity (``&lt; &gt; &amp;``, and ``&quot;`` inside attribute values). Entities nest with
limits, which this renderer keeps so Telegram never has to repair or reject a message:

* ``code`` and ``pre`` contain nothing and are inside nothing but ``blockquote``: an
  inline code span inside bold or a link closes the open tags and reopens them after it;
* blockquotes do not nest: a quote inside a quote is flattened into the outer one;
* links are made only for ``http``, ``https`` and ``tg`` URLs; any other target is shown
  in brackets after the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import NamedTuple

from markdown_it.tree import SyntaxTreeNode

from channels.markup._parse import (
    BlockRenderer,
    Line,
    has_scheme,
    lines_of,
    link_suffix,
    plain_text,
)
from channels.markup.split import TELEGRAM_LIMIT, utf16_len

_SCHEMES = ("http", "https", "tg")
_MARKS = {"strong": "b", "em": "i", "s": "s"}


def escape_html(text: str) -> str:
    """``text`` safe as Telegram HTML content: ``&``, ``<`` and ``>`` as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attribute(text: str) -> str:
    """``text`` safe inside a double-quoted attribute value."""
    return escape_html(text).replace('"', "&quot;")


class _Inline:
    """Inline markup with a stack of open tags, so tags can be closed and reopened."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.stack: list[tuple[str, str]] = []  # (name, opening tag)

    def text(self) -> str:
        return "".join(self.parts)

    def nodes(self, nodes: Sequence[SyntaxTreeNode]) -> None:
        for node in nodes:
            self.node(node)

    def node(self, node: SyntaxTreeNode) -> None:
        kind = node.type
        if kind in ("text", "html_inline"):
            self.parts.append(escape_html(node.content))
        elif kind in ("softbreak", "hardbreak"):
            self.parts.append("\n")
        elif kind in _MARKS:
            self.wrap(_MARKS[kind], node.children)
        elif kind == "code_inline":
            self.code(node.content)
        elif kind == "link":
            self.link(str(node.attrs.get("href", "")), node.children)
        elif kind == "image":
            self.image(str(node.attrs.get("src", "")), plain_text(node))
        else:
            self.nodes(node.children)

    def wrap(self, name: str, children: Sequence[SyntaxTreeNode], opening: str = "") -> None:
        if any(open_name == name for open_name, _ in self.stack):
            self.nodes(children)  # <b> inside <b> adds nothing
            return
        opening = opening or f"<{name}>"
        self.parts.append(opening)
        self.stack.append((name, opening))
        self.nodes(children)
        self.stack.pop()
        self._close(name, opening)

    def _close(self, name: str, opening: str) -> None:
        if self.parts and self.parts[-1] == opening:
            self.parts.pop()  # an empty element is noise
        else:
            self.parts.append(f"</{name}>")

    def code(self, content: str) -> None:
        for name, opening in reversed(self.stack):
            self._close(name, opening)
        self.parts.append(f"<code>{escape_html(content)}</code>")
        self.parts.extend(opening for _, opening in self.stack)

    def link(self, href: str, children: Sequence[SyntaxTreeNode]) -> None:
        in_link = any(name == "a" for name, _ in self.stack)
        if has_scheme(href, _SCHEMES) and not in_link:
            self.wrap("a", children, f'<a href="{escape_attribute(href)}">')
            return
        self.nodes(children)
        self.parts.append(escape_html(link_suffix(plain_text(*children), href)))

    def image(self, src: str, alt: str) -> None:
        if any(name == "a" for name, _ in self.stack):
            self.parts.append(escape_html(alt or src))  # a link's picture: its text is enough
        elif has_scheme(src, _SCHEMES):
            self.parts.append(f'<a href="{escape_attribute(src)}">{escape_html(alt or src)}</a>')
        else:
            self.parts.append(escape_html(alt + link_suffix(alt, src) if alt else src))


class _TelegramRenderer(BlockRenderer):
    def inline(self, nodes: Sequence[SyntaxTreeNode]) -> str:
        writer = _Inline()
        writer.nodes(nodes)
        return writer.text()

    def heading(self, nodes: Sequence[SyntaxTreeNode], *, level: int) -> str:
        writer = _Inline()
        writer.wrap("b", nodes)
        return writer.text()

    def quote(self, lines: list[Line]) -> list[Line]:
        first, last = lines[0], lines[-1]
        if len(lines) == 1:
            return [Line(f"<blockquote>{first.text}</blockquote>", first.anchored)]
        return [
            Line(f"<blockquote>{first.text}", first.anchored),
            *lines[1:-1],
            Line(f"{last.text}</blockquote>", last.anchored),
        ]

    def code_block(self, code: str, language: str) -> list[Line]:
        body = escape_html(code)
        if language:
            html = f'<pre><code class="language-{language}">{body}</code></pre>'
        else:
            html = f"<pre>{body}</pre>"
        return lines_of(html, anchored=True)

    def preformatted(self, text: str) -> list[Line]:
        return lines_of(f"<pre>{escape_html(text)}</pre>", anchored=True)

    def raw_text(self, text: str) -> str:
        return escape_html(text)


def to_telegram_html(markdown: str) -> str:
    """The assistant's Markdown as Telegram HTML, for ``parse_mode="HTML"``.

    Tags are balanced and properly nested, only tags Telegram supports appear, and all
    other text is escaped; headings become bold lines, lists ``•``/``1.`` lines, tables a
    ``<pre>`` block with aligned columns, images a link.
    """
    return _TelegramRenderer().render(markdown)


_HTML_UNIT = re.compile(r"<[^<>]*>|&#?\w+;|[\s\S]")
_TAG = re.compile(r"<\s*(/?)\s*([A-Za-z][\w-]*)")
_JOINERS = ("\u200d", "\ufe0f")


class _Unit(NamedTuple):
    text: str
    kind: str  # "open", "close" or "text"
    name: str
    size: int


def _units(html: str) -> list[_Unit]:
    units = []
    for match in _HTML_UNIT.finditer(html):
        text = match.group()
        tag = _TAG.match(text) if len(text) > 1 and text[0] == "<" else None
        if tag is None:
            units.append(_Unit(text, "text", "", utf16_len(text)))
        else:
            kind = "close" if tag.group(1) else "open"
            units.append(_Unit(text, kind, tag.group(2).lower(), utf16_len(text)))
    return units


def _apply(stack: list[_Unit], unit: _Unit) -> None:
    if unit.kind == "open":
        stack.append(unit)
    elif unit.kind == "close":
        for index in range(len(stack) - 1, -1, -1):
            if stack[index].name == unit.name:
                del stack[index:]
                break


def _closers(stack: list[_Unit]) -> str:
    return "".join(f"</{unit.name}>" for unit in reversed(stack))


def _tier(units: list[_Unit], index: int, stack: list[_Unit]) -> int:
    """How good a cut before ``units[index]`` is: 0 blank line, 1 line end, 2 space, 3 hard.

    4 is never: before a combining character or inside a joined emoji.
    """
    text = units[index].text
    previous = units[index - 1].text if index else ""
    if unicodedata.combining(text[0]) or text in _JOINERS or previous == "\u200d":
        return 4
    in_code = any(unit.name == "pre" for unit in stack)
    if text == "\n":
        following = units[index + 1].text if index + 1 < len(units) else ""
        return 0 if following == "\n" and not in_code else 1
    return 2 if text == " " and not in_code else 3


def _html_chunk(units: list[_Unit], start: int, stack: list[_Unit], limit: int) -> int:
    """The end of the next chunk from ``start``: the best cut that fits ``limit``."""
    prefix = sum(unit.size for unit in stack)
    cost, local = prefix, list(stack)
    closers = sum(len(unit.name) + 3 for unit in local)
    best: list[list[tuple[int, int]]] = [[], [], [], [], []]  # per tier: (index, cost)
    seen_text = False
    index = start
    while index < len(units):
        unit = units[index]
        if seen_text and cost + closers <= limit:
            best[_tier(units, index, local)].append((index, cost))
        if cost + unit.size > limit:
            break
        cost += unit.size
        _apply(local, unit)
        closers = sum(len(open_unit.name) + 3 for open_unit in local)
        seen_text = seen_text or unit.kind == "text"
        index += 1
    else:
        if cost + closers <= limit:
            return len(units)
    half = prefix + (limit - prefix) // 2
    for floor in (half, prefix):
        for tier in best[:3]:
            fitting = [index for index, at in tier if at > floor]
            if fitting:
                return fitting[-1]
    hard = [index for tier in best[:4] for index, _ in tier]
    return max(hard) if hard else -1


def _plain_chunk(units: list[_Unit], start: int, limit: int) -> int:
    """The end of a chunk whose tags do not fit the limit: its text alone is sent."""
    cost, index = 0, start
    while index < len(units) and (units[index].kind != "text" or cost + units[index].size <= limit):
        cost += units[index].size if units[index].kind == "text" else 0
        index += 1
    if cost == 0 and index < len(units):
        raise ValueError(f"limit {limit} is too small for the text")
    return index


def split_telegram_html(html: str, *, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Telegram HTML cut into messages of at most ``limit`` UTF-16 units of HTML.

    Never cuts inside a tag or an entity; tags open at a cut are closed at the end of the
    chunk and reopened at the start of the next, so every chunk is valid on its own. Cuts
    prefer blank lines, then line ends, then spaces (not inside ``<pre>``), like
    :func:`~channels.markup.split.split_message`. Should the open tags alone not leave
    room for any text (a huge ``href`` with a small limit), that chunk goes as plain text.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    if not html.strip():
        return []
    if utf16_len(html) <= limit:
        return [html]
    units = _units(html)
    chunks: list[str] = []
    stack: list[_Unit] = []
    start = 0
    while start < len(units):
        end = _html_chunk(units, start, stack, limit)
        plain = end < 0  # so many tags are open that only the text fits
        if plain:
            end = _plain_chunk(units, start, limit)
        body = units[start:end]
        if plain:
            chunk = "".join(unit.text for unit in body if unit.kind == "text")
        else:
            chunk = "".join(unit.text for unit in stack) + "".join(unit.text for unit in body)
        for unit in body:
            _apply(stack, unit)
        if any(unit.kind == "text" and not unit.text.isspace() for unit in body):
            chunks.append(chunk if plain else chunk + _closers(stack))
        start = end
        tier = _tier(units, end, stack) if end < len(units) else 3
        if tier < 3:
            # The whitespace at the cut goes: one line break, or a run of them or of spaces.
            separator = units[end].text
            start += 1
            while tier != 1 and start < len(units) and units[start].text == separator:
                start += 1
    return chunks
