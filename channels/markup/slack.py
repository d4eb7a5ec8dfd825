"""Markdown to Slack mrkdwn (text objects of ``type: "mrkdwn"`` and message ``text``).

Rules from Slack's "Formatting text for app surfaces": ``*bold*``, ``_italic_``,
``~strike~``, ```code```, triple-backtick blocks (no language), ``<url|text>`` links, and
``&``, ``<``, ``>`` written as ``&amp; &lt; &gt;`` everywhere, code included, because they
are Slack's control characters. mrkdwn has no headings, lists or tables: headings become
bold lines, lists ``•``/``1.`` lines, tables a code block with aligned columns.

mrkdwn has no escape character, so a literal ``*`` or ``_`` in the text can still start
formatting when another one follows; a backtick inside inline code is swapped for a
look-alike (U+02CB) and a triple backtick inside a code block is broken with U+200B.
"""

from __future__ import annotations

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

_SCHEMES = ("http", "https", "mailto")
_MARKS = {"strong": "*", "em": "_", "s": "~"}
_URL_ESCAPES = {"&": "&amp;", "<": "%3C", ">": "%3E", "|": "%7C", " ": "%20"}


def escape_mrkdwn(text: str) -> str:
    """``text`` with Slack's control characters ``&``, ``<``, ``>`` as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _url(href: str) -> str:
    return "".join(_URL_ESCAPES.get(char, char) for char in href)


def _fence_safe(code: str) -> str:
    return code.replace("```", "``\u200b`")


class _Inline:
    """Inline mrkdwn; a mark already open is not opened again (Slack cannot nest them)."""

    def __init__(self, active: frozenset[str] = frozenset()) -> None:
        self.active = active

    def nodes(self, nodes: Sequence[SyntaxTreeNode]) -> str:
        return "".join(self.node(node) for node in nodes)

    def node(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind in ("text", "html_inline"):
            return escape_mrkdwn(node.content)
        if kind in ("softbreak", "hardbreak"):
            return "\n"
        if kind in _MARKS:
            return self.mark(_MARKS[kind], node.children)
        if kind == "code_inline":
            return f"`{escape_mrkdwn(node.content.replace('`', 'ˋ'))}`"
        if kind == "link":
            return self.link(str(node.attrs.get("href", "")), node.children)
        if kind == "image":
            src, alt = str(node.attrs.get("src", "")), plain_text(node)
            if "link" in self.active:
                return escape_mrkdwn(alt or src)
            if has_scheme(src, _SCHEMES):
                return f"<{_url(src)}|{escape_mrkdwn(alt)}>" if alt else f"<{_url(src)}>"
            return escape_mrkdwn(alt + link_suffix(alt, src) if alt else src)
        return self.nodes(node.children)

    def mark(self, mark: str, children: Sequence[SyntaxTreeNode]) -> str:
        if mark in self.active:
            return self.nodes(children)
        inner = _Inline(self.active | {mark}).nodes(children)
        return f"{mark}{inner}{mark}" if inner else ""

    def link(self, href: str, children: Sequence[SyntaxTreeNode]) -> str:
        text = plain_text(*children)
        if not has_scheme(href, _SCHEMES) or "link" in self.active:
            return self.nodes(children) + escape_mrkdwn(link_suffix(text, href))
        if text == href:
            return f"<{_url(href)}>"
        label = _Inline(self.active | {"link"}).nodes(children)
        return f"<{_url(href)}|{label}>"


class _SlackRenderer(BlockRenderer):
    def inline(self, nodes: Sequence[SyntaxTreeNode]) -> str:
        return _Inline().nodes(nodes)

    def heading(self, nodes: Sequence[SyntaxTreeNode], *, level: int) -> str:
        inner = _Inline(frozenset("*")).nodes(nodes)
        return f"*{inner}*" if inner else ""

    def quote(self, lines: list[Line]) -> list[Line]:
        return [Line(f"> {line.text}" if line.text else ">", line.anchored) for line in lines]

    def code_block(self, code: str, language: str) -> list[Line]:
        return lines_of(f"```\n{escape_mrkdwn(_fence_safe(code))}\n```", anchored=True)

    def preformatted(self, text: str) -> list[Line]:
        return self.code_block(text, "")

    def raw_text(self, text: str) -> str:
        return escape_mrkdwn(text)


def to_slack_mrkdwn(markdown: str) -> str:
    """The assistant's Markdown as Slack mrkdwn."""
    return _SlackRenderer().render(markdown)
