"""Markdown to Discord message markdown.

Discord speaks a Markdown dialect: ``**bold**``, ``*italic*``, ``~~strike~~``, code spans
and fences with a language, ``[text](url)`` links, ``> `` quotes and ``#``/``##``/``###``
headings (deeper headings become bold lines). It has no tables, so a table becomes a code
block with aligned columns, and quotes do not nest, so nested quotes are flattened.

Plain text is escaped with backslashes, which Discord removes before display: ``\\ * _ ~
` | [ <`` everywhere (``<`` keeps ``<@id>``/``<t:...>`` from turning into mentions or
timestamps), and ``# > - +`` and ``1.`` at the start of a line. Bare URLs are left alone so
they stay clickable. ``@everyone``, ``@here`` and raw ``@id`` mentions get a zero-width
space after the ``@`` so that quoting a user never pings a channel; code is left verbatim,
except that a triple backtick inside a code block is broken with U+200B.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it.tree import SyntaxTreeNode

from channels.markup._parse import (
    BlockRenderer,
    Line,
    has_scheme,
    lines_of,
    link_suffix,
    plain_text,
)

_SCHEMES = ("http", "https")
_MARKS = {"strong": "**", "em": "*", "s": "~~"}
_SPECIAL = re.compile(r"([\\*_~`|\[\]<])")
_LINE_START = re.compile(r"^([ \t]*)([#>+-]|\d+(?=[.)]))", re.MULTILINE)
_BARE_URL = re.compile(r"https?://[^\s<]+[^\s<.,:;\"')\]]")
_MENTION = re.compile(r"@(everyone|here|[!&]?[0-9]{17,20})")
_URL_ESCAPES = {"(": "%28", ")": "%29", " ": "%20", "<": "%3C", ">": "%3E"}


def escape_discord(text: str, *, line_start: bool = True) -> str:
    """``text`` shown literally on Discord (``line_start``: ``text`` begins a line)."""
    pieces = []
    last = 0
    for match in _BARE_URL.finditer(text):
        pieces.append(_escape_plain(text[last : match.start()]))
        pieces.append(match.group())
        last = match.end()
    pieces.append(_escape_plain(text[last:]))
    escaped = "".join(pieces)
    if not line_start:
        first, newline, rest = escaped.partition("\n")
        return first + newline + _escape_line_starts(rest) if newline else escaped
    return _escape_line_starts(escaped)


def _escape_plain(text: str) -> str:
    return _MENTION.sub("@\u200b\\1", _SPECIAL.sub(r"\\\1", text))


def _escape_line_starts(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        marker = match.group(2)
        if marker.isdigit():
            # "1." starts a numbered list: the escape goes on the dot.
            return match.group(1) + marker + "\\"
        return match.group(1) + "\\" + marker

    return _LINE_START.sub(escape, text)


def _url(href: str) -> str:
    return "".join(_URL_ESCAPES.get(char, char) for char in href)


def _fence_safe(code: str) -> str:
    return code.replace("```", "``\u200b`")


def _code_span(content: str) -> str:
    if "`" not in content:
        return f"`{content}`"
    if "``" in content:
        content = content.replace("`", "ˋ")  # Discord has no escape inside a code span
        return f"`{content}`"
    return f"`` {content} ``"


class _Inline:
    """Inline Discord markdown; ``at_line_start`` drives the line-start escapes."""

    def __init__(self, active: frozenset[str] = frozenset(), *, at_line_start: bool) -> None:
        self.active = active
        self.at_line_start = at_line_start

    def nodes(self, nodes: Sequence[SyntaxTreeNode]) -> str:
        return "".join(self.node(node) for node in nodes)

    def node(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind in ("softbreak", "hardbreak"):
            self.at_line_start = True
            return "\n"
        line_start, self.at_line_start = self.at_line_start, False
        if kind in ("text", "html_inline"):
            return escape_discord(node.content, line_start=line_start)
        if kind in _MARKS:
            return self.mark(_MARKS[kind], node.children)
        if kind == "code_inline":
            return _code_span(node.content)
        if kind == "link":
            return self.link(str(node.attrs.get("href", "")), node.children)
        if kind == "image":
            src, alt = str(node.attrs.get("src", "")), plain_text(node)
            if "link" in self.active:
                return escape_discord(alt or src, line_start=False)
            if has_scheme(src, _SCHEMES):
                return f"[{escape_discord(alt, line_start=False)}]({_url(src)})" if alt else src
            return escape_discord(alt + link_suffix(alt, src) if alt else src, line_start=False)
        self.at_line_start = line_start
        return self.nodes(node.children)

    def mark(self, mark: str, children: Sequence[SyntaxTreeNode]) -> str:
        if mark in self.active:
            return self.nodes(children)
        inner = _Inline(self.active | {mark}, at_line_start=False).nodes(children)
        return f"{mark}{inner}{mark}" if inner else ""

    def link(self, href: str, children: Sequence[SyntaxTreeNode]) -> str:
        text = plain_text(*children)
        if not has_scheme(href, _SCHEMES) or "link" in self.active:
            label = _Inline(self.active, at_line_start=False).nodes(children)
            return label + escape_discord(link_suffix(text, href), line_start=False)
        if text == href:
            return href
        label = _Inline(self.active | {"link"}, at_line_start=False).nodes(children)
        return f"[{label}]({_url(href)})"


class _DiscordRenderer(BlockRenderer):
    def inline(self, nodes: Sequence[SyntaxTreeNode]) -> str:
        return _Inline(at_line_start=True).nodes(nodes)

    def heading(self, nodes: Sequence[SyntaxTreeNode], *, level: int) -> str:
        if level > 3:
            inner = _Inline(frozenset({"**"}), at_line_start=False).nodes(nodes)
            return f"**{inner}**" if inner else ""
        inner = _Inline(at_line_start=False).nodes(nodes)
        return f"{'#' * level} {inner}" if inner else ""

    def quote(self, lines: list[Line]) -> list[Line]:
        return [Line(f"> {line.text}", line.anchored) for line in lines]

    def code_block(self, code: str, language: str) -> list[Line]:
        return lines_of(f"```{language}\n{_fence_safe(code)}\n```", anchored=True)

    def preformatted(self, text: str) -> list[Line]:
        return self.code_block(text, "")

    def raw_text(self, text: str) -> str:
        return escape_discord(text)


def to_discord(markdown: str) -> str:
    """The assistant's Markdown as a Discord message."""
    return _DiscordRenderer().render(markdown)
