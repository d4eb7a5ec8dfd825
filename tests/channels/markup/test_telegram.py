"""Markdown to Telegram HTML: every construct, escaping, and validity of any output."""

from __future__ import annotations

from hypothesis import given, settings

from channels.markup import to_telegram_html
from tests.channels.markup import (
    LINES,
    MARKDOWN,
    literal_markdown,
    telegram_html_problems,
    visible_text,
)


def test_inline_marks() -> None:
    assert to_telegram_html("**b** _i_ ~~s~~ *i*") == "<b>b</b> <i>i</i> <s>s</s> <i>i</i>"


def test_nested_marks() -> None:
    assert to_telegram_html("**bold _both_**") == "<b>bold <i>both</i></b>"


def test_text_is_escaped() -> None:
    assert to_telegram_html("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"


def test_raw_html_is_shown_as_text() -> None:
    assert to_telegram_html("x <b>y</b> z") == "x &lt;b&gt;y&lt;/b&gt; z"
    assert to_telegram_html("<script>\nalert(1)\n</script>") == (
        "&lt;script&gt;\nalert(1)\n&lt;/script&gt;"
    )


def test_inline_code_is_escaped_not_formatted() -> None:
    assert to_telegram_html("use `<a href=x>` and `**`") == (
        "use <code>&lt;a href=x&gt;</code> and <code>**</code>"
    )


def test_code_inside_bold_is_lifted_out() -> None:
    # Telegram: bold cannot contain code, so bold is closed around it and reopened.
    assert to_telegram_html("**run `make` now**") == "<b>run </b><code>make</code><b> now</b>"


def test_code_block_with_language() -> None:
    markdown = '```python\nif a < b and c & d:\n    print("x")\n```'
    assert to_telegram_html(markdown) == (
        '<pre><code class="language-python">if a &lt; b and c &amp; d:\n    print("x")</code></pre>'
    )


def test_code_block_without_language_and_indented() -> None:
    assert to_telegram_html("```\nx = 1\n```") == "<pre>x = 1</pre>"
    assert to_telegram_html("text\n\n    indented <code>") == (
        "text\n\n<pre>indented &lt;code&gt;</pre>"
    )


def test_code_block_language_is_sanitised() -> None:
    markup = to_telegram_html('```py"><b>x\ncode\n```')
    assert markup == '<pre><code class="language-pybx">code</code></pre>'


def test_headings_are_bold_lines() -> None:
    assert to_telegram_html("# Title\n\ntext\n\n### Sub `x`") == (
        "<b>Title</b>\n\ntext\n\n<b>Sub </b><code>x</code>"
    )


def test_links() -> None:
    assert to_telegram_html("[docs](https://example.com/a?x=1&y=2)") == (
        '<a href="https://example.com/a?x=1&amp;y=2">docs</a>'
    )
    assert to_telegram_html("<https://example.com>") == (
        '<a href="https://example.com">https://example.com</a>'
    )
    assert to_telegram_html("[**bold** link](https://e.example)") == (
        '<a href="https://e.example"><b>bold</b> link</a>'
    )


def test_link_attribute_quotes_are_escaped() -> None:
    markup = to_telegram_html('[x](<https://e.example/a"b>)')
    assert markup == '<a href="https://e.example/a%22b">x</a>'
    assert telegram_html_problems(markup) == []


def test_links_that_cannot_be_links() -> None:
    assert to_telegram_html("[guide](/docs/guide)") == "guide (/docs/guide)"
    assert to_telegram_html("<me@example.com>") == "me@example.com"
    # markdown-it refuses javascript: links, so the source stays literal text.
    assert to_telegram_html("[x](javascript:alert(1))") == "[x](javascript:alert(1))"


def test_images_become_links() -> None:
    assert to_telegram_html("![a cat](https://img.example/c.png)") == (
        '<a href="https://img.example/c.png">a cat</a>'
    )
    assert to_telegram_html("[![logo](https://i.example/l.png)](https://e.example)") == (
        '<a href="https://e.example">logo</a>'
    )


def test_blockquote_and_nested_quote_flattened() -> None:
    assert to_telegram_html("> one *it*\n>\n> > two") == (
        "<blockquote>one <i>it</i>\n\ntwo</blockquote>"
    )


def test_nested_lists() -> None:
    markdown = "- a\n  - b\n    - c\n- d\n\n3. x\n4. y\n   - z"
    assert to_telegram_html(markdown) == ("• a\n  • b\n    • c\n• d\n\n3. x\n4. y\n   • z")


def test_list_item_with_code_block_keeps_code_unindented() -> None:
    markdown = "- run:\n\n  ```sh\n  make  test\n  ```"
    assert to_telegram_html(markdown) == (
        '• run:\n<pre><code class="language-sh">make  test</code></pre>'
    )


def test_table_becomes_aligned_pre() -> None:
    markdown = "| Name | Qty |\n|:--|--:|\n| apple & pear | 3 |\n| kiwi | 12 |"
    assert to_telegram_html(markdown) == (
        "<pre>Name         | Qty\n"
        "-------------+----\n"
        "apple &amp; pear |   3\n"
        "kiwi         |  12</pre>"
    )


def test_rule_and_hard_break() -> None:
    assert to_telegram_html("a  \nb\n\n---\n\nc") == "a\nb\n\n──────────\n\nc"


def test_empty_input() -> None:
    assert to_telegram_html("") == ""


def test_checker_catches_invalid_markup() -> None:
    assert telegram_html_problems("<b>x") == ["left open: ['b']"]
    assert telegram_html_problems("<div>x</div>")
    assert telegram_html_problems("a & b")
    assert telegram_html_problems("<b><code>x</code></b>")
    assert (
        telegram_html_problems("<b>ok</b> &lt; <pre><code class='language-x'>y</code></pre>") == []
    )


@settings(max_examples=400, deadline=None)
@given(MARKDOWN)
def test_any_markdown_gives_valid_telegram_html(markdown: str) -> None:
    markup = to_telegram_html(markdown)
    assert telegram_html_problems(markup) == []


@settings(max_examples=300, deadline=None)
@given(LINES)
def test_users_see_exactly_the_text(lines: list[str]) -> None:
    text = "\n".join(lines)
    markup = to_telegram_html(literal_markdown(text))
    assert telegram_html_problems(markup) == []
    assert visible_text(markup) == text
