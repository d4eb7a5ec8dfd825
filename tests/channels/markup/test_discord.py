"""Markdown to Discord markdown: every construct, escaping, and what users end up seeing."""

from __future__ import annotations

import re

from hypothesis import assume, given, settings

from channels.markup import to_discord
from tests.channels.markup import LINES, literal_markdown

# Discord, like CommonMark, shows a backslash-escaped punctuation character as itself.
_DISCORD_ESCAPE = re.compile(r"\\([^0-9A-Za-z\s])")
_PING = re.compile(r"@(?=everyone|here|[!&]?[0-9]{17,20})")


def test_inline_marks() -> None:
    assert to_discord("**b** _i_ ~~s~~ ***bi***") == "**b** *i* ~~s~~ ***bi***"


def test_markdown_specials_in_text_are_escaped() -> None:
    assert to_discord(r"snake_case 5 \* 3 a|b \~x\~ \`c\` back\\slash") == (
        r"snake\_case 5 \* 3 a\|b \~x\~ \`c\` back\\slash"
    )


def test_line_start_specials_are_escaped() -> None:
    markdown = "\\# not a heading\n\\- not a list\n1\\. not numbered\n\\> not a quote"
    assert to_discord(markdown) == (
        "\\# not a heading\n\\- not a list\n1\\. not numbered\n\\> not a quote"
    )
    assert to_discord("a - b # c > d") == "a - b # c > d"


def test_angle_brackets_and_raw_html() -> None:
    assert to_discord("a < b && c > d <b>x</b>") == "a \\< b && c > d \\<b>x\\</b>"


def test_mentions_are_neutralised() -> None:
    assert to_discord("@everyone and @here, ping <@123456789012345678>") == (
        "@\u200beveryone and @\u200bhere, ping \\<@\u200b123456789012345678>"
    )


def test_bare_urls_are_not_escaped() -> None:
    assert to_discord("see https://e.example/a_b_c. ok_") == "see https://e.example/a_b_c. ok\\_"


def test_inline_code_is_verbatim() -> None:
    assert to_discord("`a_b*c` and ``x ` y``") == "`a_b*c` and `` x ` y ``"


def test_code_block_keeps_language_and_content() -> None:
    markdown = "```python\ndef f(a_b):\n    return a_b * 2  # @everyone\n```"
    assert to_discord(markdown) == ("```python\ndef f(a_b):\n    return a_b * 2  # @everyone\n```")


def test_triple_backticks_inside_code_cannot_close_the_block() -> None:
    assert to_discord("````\nx = '```'\n````") == "```\nx = '``\u200b`'\n```"


def test_headings() -> None:
    assert to_discord("# One\n\n## Two\n\n### Three\n\n#### Four *it*") == (
        "# One\n\n## Two\n\n### Three\n\n**Four *it***"
    )


def test_links() -> None:
    assert to_discord("[docs](https://e.example/a_(b))") == "[docs](https://e.example/a_%28b%29)"
    assert to_discord("[**big** deal](https://e.example)") == "[**big** deal](https://e.example)"
    assert to_discord("<https://e.example/x_y>") == "https://e.example/x_y"
    assert to_discord("[guide](/docs/guide)") == "guide (/docs/guide)"


def test_images_become_links() -> None:
    assert to_discord("![a cat](https://i.example/c.png)") == "[a cat](https://i.example/c.png)"


def test_blockquote_and_nested_quote_flattened() -> None:
    assert to_discord("> one\n> *two*\n>\n> > three") == "> one\n> *two*\n> \n> three"


def test_nested_lists() -> None:
    assert to_discord("- a\n  - b_c\n    - d\n- e\n\n7. x\n8. y") == (
        "• a\n  • b\\_c\n    • d\n• e\n\n7. x\n8. y"
    )


def test_table_becomes_aligned_code_block() -> None:
    markdown = "| key | value |\n|-----|------:|\n| a_b | 1 |\n| 名前 | 22 |"
    assert to_discord(markdown) == (
        "```\nkey  | value\n-----+------\na_b  |     1\n名前 |    22\n```"
    )


def test_rule() -> None:
    assert to_discord("a\n\n---\n\nb") == "a\n\n──────────\n\nb"


@settings(max_examples=300, deadline=None)
@given(LINES)
def test_users_see_exactly_the_text(lines: list[str]) -> None:
    text = "\n".join(lines)
    assume("://" not in text)  # bare URLs are deliberately left unescaped
    shown = _DISCORD_ESCAPE.sub(r"\1", to_discord(literal_markdown(text)))
    # The only change users see: a zero-width space that keeps mentions from pinging.
    assert shown == _PING.sub("@\u200b", text)
