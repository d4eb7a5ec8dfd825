"""Shared strategies and checkers for the markup tests."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from hypothesis import strategies as st

_ALLOWED = {"b", "i", "s", "u", "code", "pre", "a", "blockquote", "tg-spoiler"}
_ENTITY_OR_AMP = re.compile(r"&(?!lt;|gt;|amp;|quot;)")
_TAG = re.compile(r"<[^<>]*>")

# Fragments that exercise every Markdown construct and every character Telegram cares about.
MARKDOWN_PIECES = st.sampled_from(
    [
        "**", "*", "_", "__", "~~", "`", "```", "```python\n", "\n", "\n\n", "# ", "## ",
        "- ", "1. ", "  - ", "> ", "> > ", "[a](https://x.example/?a=1&b=\"2\")", "![i](",
        "](", ")", "<b>", "</i>", "<", ">", "&", "&amp;", '"', "|", "| a | b |\n|---|---|\n",
        "\\", "@everyone", "text", " ", "😀", "<https://auto.example>", "---\n", "    ",
    ]
)  # fmt: skip
MARKDOWN = st.lists(MARKDOWN_PIECES | st.text(max_size=8), max_size=40).map("".join)


class _Checker(HTMLParser):
    """Tag balance and the Bot API's nesting rules (code and pre hold nothing, ...)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        allowed_attrs = {"a": {"href"}, "code": {"class"}}.get(tag, set())
        if tag not in _ALLOWED or any(name not in allowed_attrs for name, _ in attrs):
            self.problems.append(f"tag not allowed: <{tag} {attrs}>")
        if tag == "code" and attrs and not (self.stack and self.stack[-1] == "pre"):
            self.problems.append("a language outside <pre>")
        if {"code", "pre"} & set(self.stack) and not (tag == "code" and self.stack[-1] == "pre"):
            self.problems.append(f"<{tag}> inside code")
        if tag in ("code", "pre") and set(self.stack) - {"blockquote", "pre"}:
            self.problems.append(f"<{tag}> inside {self.stack}")
        if tag in self.stack:
            self.problems.append(f"<{tag}> nested in itself")
        if tag == "blockquote" and self.stack:
            self.problems.append(f"<blockquote> inside {self.stack}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack}")
        else:
            self.stack.pop()


def telegram_html_problems(markup: str) -> list[str]:
    """Everything that would make Telegram reject ``markup`` (empty when it is valid)."""
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    problems = checker.problems
    if checker.stack:
        problems.append(f"left open: {checker.stack}")
    outside_tags = _TAG.sub("", markup)
    if "<" in outside_tags or ">" in outside_tags:
        problems.append("unescaped < or >")
    if _ENTITY_OR_AMP.search(markup):
        problems.append("unescaped &")
    return problems


def visible_text(markup: str) -> str:
    """The text Telegram shows for ``markup``."""
    return html.unescape(_TAG.sub("", markup))


_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")

LINES = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=30)
    .map(str.strip)
    .filter(bool),
    min_size=1,
    max_size=4,
)


def literal_markdown(text: str) -> str:
    """Markdown whose rendering is exactly ``text``: every punctuation character escaped."""
    return _PUNCTUATION.sub(r"\\\1", text)
