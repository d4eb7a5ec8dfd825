"""Markdown parsing and the block layout the three platform renderers share.

The model writes CommonMark (plus GFM tables and strikethrough). markdown-it-py parses it
into a syntax tree; :class:`BlockRenderer` walks the block level (paragraphs, headings,
lists, quotes, code, tables) and leaves the inline level and the markup of each block kind
to a subclass per platform. Blocks come out as :class:`Line` values so that list
indentation can be applied without touching code or moving a quote off its line start.
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

# None of the platforms draws a thematic break, so a horizontal rule is a line of box
# drawing characters: plain text everywhere, and not Markdown syntax on Discord.
RULE = "─" * 10
BULLET = "• "
_LANGUAGE = re.compile(r"[^A-Za-z0-9_+#.-]")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def parse(markdown: str) -> SyntaxTreeNode:
    """The syntax tree of a Markdown text."""
    return SyntaxTreeNode(_parser().parse(markdown))


class Line(NamedTuple):
    """One output line; ``anchored`` lines (code, quotes) are never indented.

    Indenting code would change it, and quote markup (``> ``) only works at a line start.
    """

    text: str
    anchored: bool = False


def lines_of(text: str, *, anchored: bool = False) -> list[Line]:
    """``text`` cut into :class:`Line` values."""
    return [Line(part, anchored) for part in text.split("\n")]


def code_language(info: str) -> str:
    """The language of a fence's info string, reduced to characters safe in any markup."""
    words = info.split()
    return _LANGUAGE.sub("", words[0]) if words else ""


def has_scheme(url: str, schemes: Sequence[str]) -> bool:
    """Whether ``url`` starts with one of ``schemes`` (``"https"``, ...), case-insensitively."""
    head, sep, _ = url.partition(":")
    return bool(sep) and head.lower() in schemes


def link_suffix(text: str, href: str) -> str:
    """What to show after a link's text when the link cannot be a link: `` (href)``."""
    if text == href or href == f"mailto:{text}":
        return ""
    return f" ({href})"


def plain_text(*nodes: SyntaxTreeNode) -> str:
    """The visible text of inline nodes, without any markup."""
    parts = []
    for node in nodes:
        if node.type in ("text", "code_inline", "html_inline"):
            parts.append(node.content)
        elif node.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        else:
            parts.append(plain_text(*node.children))
    return "".join(parts)


def display_width(text: str) -> int:
    """Columns ``text`` takes in a monospace font: wide East Asian characters take two."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or char in "\u200b\u200d\ufe0f":
            continue
        width += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return width


def _pad(text: str, width: int, align: str) -> str:
    gap = width - display_width(text)
    if align == "right":
        return " " * gap + text
    if align == "center":
        return " " * (gap // 2) + text + " " * (gap - gap // 2)
    return text + " " * gap


def table_text(table: SyntaxTreeNode) -> str:
    """A GFM table as aligned plain-text columns, for a monospace block."""
    rows: list[list[str]] = []
    aligns: list[str] = []
    header_rows = 0
    for section in table.children:
        for row_node in section.children:
            cell_nodes = row_node.children
            rows.append([" ".join(plain_text(cell).split()) for cell in cell_nodes])
            if section.type == "thead":
                header_rows += 1
                styles = [str(cell.attrs.get("style", "")) for cell in cell_nodes]
                aligns = [style.partition(":")[2] for style in styles]
    columns = max(len(row) for row in rows)
    for row in rows:
        row.extend([""] * (columns - len(row)))
    aligns.extend([""] * (columns - len(aligns)))
    widths = [max(display_width(row[col]) for row in rows) for col in range(columns)]
    out = []
    for index, row in enumerate(rows):
        cells = [_pad(cell, widths[col], aligns[col]) for col, cell in enumerate(row)]
        out.append(" | ".join(cells).rstrip())
        if index + 1 == header_rows:
            out.append("-+-".join("-" * width for width in widths))
    return "\n".join(out)


class BlockRenderer(ABC):
    """The block structure of a Markdown text, rendered for one platform.

    A subclass supplies the inline markup, the heading, quote, code and preformatted
    blocks and the escaping of raw text; this class supplies lists, nesting and spacing.
    """

    def __init__(self) -> None:
        self._quote_depth = 0

    def render(self, markdown: str) -> str:
        """The whole Markdown text in the platform's markup."""
        lines = self.blocks(parse(markdown).children, loose=True)
        return "\n".join(line.text for line in lines).strip("\n")

    def blocks(self, nodes: Sequence[SyntaxTreeNode], *, loose: bool) -> list[Line]:
        """Consecutive blocks, separated by a blank line when ``loose``."""
        out: list[Line] = []
        for node in nodes:
            lines = self.block(node)
            if not lines:
                continue
            if out and loose:
                out.append(Line(""))
            out.extend(lines)
        return out

    def block(self, node: SyntaxTreeNode) -> list[Line]:
        """One block node as lines."""
        kind = node.type
        if kind == "paragraph":
            return lines_of(self.inline(node.children[0].children))
        if kind == "heading":
            text = self.heading(node.children[0].children, level=int(node.tag[1:]))
            return lines_of(text) if text else []
        if kind in ("bullet_list", "ordered_list"):
            return self.list_lines(node)
        if kind == "blockquote":
            return self.blockquote(node)
        if kind in ("fence", "code_block"):
            code = node.content.removesuffix("\n")
            # An empty block shows nothing, and an empty <pre> is an empty Telegram message.
            return self.code_block(code, code_language(node.info)) if code.strip() else []
        if kind == "table":
            return self.preformatted(table_text(node))
        if kind == "hr":
            return [Line(RULE)]
        if kind == "html_block":
            return lines_of(self.raw_text(node.content.strip("\n")))
        return self.blocks(node.children, loose=True)

    def blockquote(self, node: SyntaxTreeNode) -> list[Line]:
        """A quote; quotes inside quotes are flattened (no platform nests them)."""
        self._quote_depth += 1
        try:
            inner = self.blocks(node.children, loose=True)
        finally:
            self._quote_depth -= 1
        if self._quote_depth or not inner:
            return inner
        return [Line(line.text, anchored=True) for line in self.quote(inner)]

    def list_lines(self, node: SyntaxTreeNode) -> list[Line]:
        """A bullet or numbered list; nested content is indented under its marker."""
        ordered = node.type == "ordered_list"
        start = int(str(node.attrs.get("start", 1))) if ordered else 1
        out: list[Line] = []
        for index, item in enumerate(node.children):
            marker = f"{start + index}. " if ordered else BULLET
            pad = " " * len(marker)
            inner = self.blocks(item.children, loose=False) or [Line("")]
            if inner[0].anchored:
                # Code or a quote right after the marker would lose its syntax.
                out.append(Line(marker.rstrip()))
            else:
                out.append(Line(marker + inner[0].text))
                inner = inner[1:]
            for line in inner:
                indent = not line.anchored and line.text
                out.append(Line(pad + line.text) if indent else line)
        return out

    @abstractmethod
    def inline(self, nodes: Sequence[SyntaxTreeNode]) -> str:
        """The children of an inline node in the platform's markup."""

    @abstractmethod
    def heading(self, nodes: Sequence[SyntaxTreeNode], *, level: int) -> str:
        """A heading whose inline content is ``nodes``; empty when there is nothing to show."""

    @abstractmethod
    def quote(self, lines: list[Line]) -> list[Line]:
        """Rendered lines wrapped as one block quotation."""

    @abstractmethod
    def code_block(self, code: str, language: str) -> list[Line]:
        """A code block with its content kept verbatim."""

    @abstractmethod
    def preformatted(self, text: str) -> list[Line]:
        """Plain text in a monospace block (tables)."""

    @abstractmethod
    def raw_text(self, text: str) -> str:
        """Text shown exactly as written (raw HTML in the Markdown), escaped."""
