"""Markdown to Slack mrkdwn: every construct, escaping, and validity of any output."""

from __future__ import annotations

import re

from hypothesis import assume, given, settings

from channels.markup import to_slack_mrkdwn
from tests.channels.markup import LINES, MARKDOWN, literal_markdown

_LINK = re.compile(r"<[^<>|\s]+(?:\|[^<>]*)?>")
_BAD_AMP = re.compile(r"&(?!lt;|gt;|amp;)")
_QUOTE = re.compile(r"^> ?", re.MULTILINE)


def test_inline_marks() -> None:
    assert to_slack_mrkdwn("**b** _i_ ~~s~~ *i*") == "*b* _i_ ~s~ _i_"


def test_nested_same_mark_is_not_doubled() -> None:
    assert to_slack_mrkdwn("**a **b** c**") == "*a b c*"
    assert to_slack_mrkdwn("# Title **bold**") == "*Title bold*"


def test_control_characters_are_escaped() -> None:
    assert to_slack_mrkdwn("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    assert to_slack_mrkdwn("<!channel> x <b>y</b>") == "&lt;!channel&gt; x &lt;b&gt;y&lt;/b&gt;"


def test_inline_code() -> None:
    assert to_slack_mrkdwn("use `a<b` and ``x ` y``") == "use `a&lt;b` and `x ˋ y`"


def test_code_block_drops_language_and_escapes() -> None:
    markdown = "```python\nif a < b & c:\n    s = '```'\n```"
    assert to_slack_mrkdwn(markdown) == ("```\nif a &lt; b &amp; c:\n    s = '``\u200b`'\n```")


def test_headings_are_bold_lines() -> None:
    assert to_slack_mrkdwn("## Setup\n\nRun it.") == "*Setup*\n\nRun it."


def test_links() -> None:
    assert to_slack_mrkdwn("[docs](https://e.example/a?x=1&y=2)") == (
        "<https://e.example/a?x=1&amp;y=2|docs>"
    )
    assert to_slack_mrkdwn("[a|b](https://e.example/p|q)") == "<https://e.example/p%7Cq|a|b>"
    assert to_slack_mrkdwn("<https://e.example>") == "<https://e.example>"
    assert to_slack_mrkdwn("<me@example.com>") == "<mailto:me@example.com|me@example.com>"
    assert to_slack_mrkdwn("[**big** deal](https://e.example)") == "<https://e.example|*big* deal>"
    assert to_slack_mrkdwn("[guide](/docs/guide)") == "guide (/docs/guide)"


def test_images_become_links() -> None:
    assert to_slack_mrkdwn("![cat](https://i.example/c.png)") == "<https://i.example/c.png|cat>"
    assert to_slack_mrkdwn("![](https://i.example/c.png)") == "<https://i.example/c.png>"


def test_blockquote_lines_and_nested_quote_flattened() -> None:
    assert to_slack_mrkdwn("> one _i_\n> two\n>\n> > deeper") == ("> one _i_\n> two\n>\n> deeper")


def test_nested_lists() -> None:
    assert to_slack_mrkdwn("- a\n  - b\n    1. c\n    2. d\n- e") == (
        "• a\n  • b\n    1. c\n    2. d\n• e"
    )


def test_table_becomes_aligned_code_block() -> None:
    assert to_slack_mrkdwn("| a | b |\n|---|:-:|\n| 1 & 2 | <3 |") == (
        "```\na     | b\n------+---\n1 &amp; 2 | &lt;3\n```"
    )


def test_rule() -> None:
    assert to_slack_mrkdwn("a\n\n***\n\nb") == "a\n\n──────────\n\nb"


@settings(max_examples=300, deadline=None)
@given(MARKDOWN)
def test_any_markdown_gives_escaped_mrkdwn(markdown: str) -> None:
    mrkdwn = to_slack_mrkdwn(markdown)
    assert not _BAD_AMP.search(mrkdwn)
    outside_links = _LINK.sub("", _QUOTE.sub("", mrkdwn))
    assert "<" not in outside_links and ">" not in outside_links


@settings(max_examples=300, deadline=None)
@given(LINES)
def test_users_see_exactly_the_text(lines: list[str]) -> None:
    text = "\n".join(lines)
    assume(not set(text) & set("*_~`"))  # mrkdwn has no escape for its format characters
    mrkdwn = to_slack_mrkdwn(literal_markdown(text))
    shown = mrkdwn.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert shown == text
