"""Splitting long answers: where cuts fall, fenced code across chunks, Telegram HTML."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.markup import (
    DISCORD_LIMIT,
    TELEGRAM_LIMIT,
    split_message,
    split_telegram_html,
    to_discord,
    to_telegram_html,
    utf16_len,
)
from tests.channels.markup import MARKDOWN, telegram_html_problems, visible_text

_PRE = re.compile(r"<pre><code[^>]*>(.*?)</code></pre>", re.S)


def _code_and_prose(text: str) -> tuple[list[str], list[str], bool]:
    """Lines inside ``` fences, words outside them, and whether a fence is left open."""
    inside, code, prose = False, [], []
    for line in text.split("\n"):
        if line.startswith("```"):
            inside = not inside
        elif inside:
            code.append(line)
        else:
            prose.extend(line.split())
    return code, prose, inside


def _pieces_of(text: str, chunks: list[str]) -> bool:
    """Whether ``chunks`` are consecutive pieces of ``text`` with only whitespace dropped."""
    pattern = r"\s*" + r"\s*".join(re.escape(chunk) for chunk in chunks) + r"\s*"
    return re.fullmatch(pattern, text) is not None


def test_text_that_fits_is_one_chunk() -> None:
    assert split_message("hello", limit=5) == ["hello"]
    assert split_message("", limit=5) == []
    assert split_message(" \n\n ", limit=5) == []


def test_cuts_at_a_blank_line_first() -> None:
    paragraph = " ".join(["alpha"] * 8)
    text = f"{paragraph}\n\n{paragraph}\nshort"
    assert split_message(text, limit=60) == [paragraph, f"{paragraph}\nshort"]


def test_then_at_a_line_end_then_at_a_space_then_hard() -> None:
    assert split_message("line one is here\nline two is here too", limit=30) == [
        "line one is here",
        "line two is here too",
    ]
    assert split_message("aaaa bbbb cccc dddd", limit=9) == ["aaaa bbbb", "cccc dddd"]
    assert split_message("a" * 25, limit=10) == ["a" * 10, "a" * 10, "a" * 5]


def test_an_early_blank_line_does_not_make_a_tiny_chunk() -> None:
    text = "Hi.\n\n" + "x" * 20 + "\n" + "y" * 20
    assert split_message(text, limit=30) == ["Hi.\n\n" + "x" * 20, "y" * 20]


def test_hard_cuts_keep_entities_and_escapes_whole() -> None:
    assert split_message("aaaaaaa&amp;bbb", limit=10) == ["aaaaaaa", "&amp;bbb"]
    assert split_message("aaaaaaaaa\\*bbb", limit=10) == ["aaaaaaaaa", "\\*bbb"]
    assert split_message("aaaaaaaaae\u0301bb", limit=10) == ["aaaaaaaaa", "e\u0301bb"]


def test_long_code_block_is_closed_and_reopened() -> None:
    code = "\n".join(f"    total_{i} = compute({i}) * weight_{i}  # step {i}" for i in range(150))
    answer = f"Here is the script:\n\n```python\n{code}\n```\n\nRun it with `python x.py`."
    chunks = split_message(to_discord(answer), limit=DISCORD_LIMIT)
    assert len(chunks) >= 4
    assert all(len(chunk) <= DISCORD_LIMIT for chunk in chunks)
    code_lines: list[str] = []
    for index, chunk in enumerate(chunks):
        chunk_code, _, left_open = _code_and_prose(chunk)
        assert not left_open
        code_lines.extend(chunk_code)
        if 0 < index < len(chunks) - 1:
            assert chunk.startswith("```python\n") and chunk.endswith("\n```")
    assert "\n".join(code_lines) == code
    assert chunks[0].startswith("Here is the script:")
    assert chunks[-1].endswith("Run it with `python x.py`.")


def test_blank_lines_inside_code_survive_a_cut() -> None:
    code = "\n\n".join(f"step_{i}()" for i in range(40))
    chunks = split_message(f"```\n{code}\n```", limit=100)
    code_lines = [line for chunk in chunks for line in _code_and_prose(chunk)[0]]
    assert "\n".join(code_lines) == code


def test_a_code_line_longer_than_the_room_is_cut_hard_not_left_empty() -> None:
    chunks = split_message("intro\n\n```python\n" + "x" * 300 + "\n```", limit=100)
    assert chunks[0] == "intro"
    assert all(re.fullmatch(r"```python\nx+\n```", chunk) for chunk in chunks[1:])
    assert "".join(chunk[10:-4] for chunk in chunks[1:]) == "x" * 300


def test_tilde_fence_reopens_with_its_info_string() -> None:
    body = "\n".join(f"let v{i} = {i};" for i in range(30))
    chunks = split_message(f"~~~js title\n{body}\n~~~", limit=120)
    assert chunks[1].startswith("~~~js title\n")
    assert all(chunk.endswith("\n~~~") for chunk in chunks)


def test_unclosed_fence_is_closed_where_cut() -> None:
    body = "\n".join(f"x{i} = {i}" for i in range(40))
    chunks = split_message(f"```\n{body}", limit=100)
    assert all(chunk.endswith("\n```") for chunk in chunks[:-1])
    assert chunks[-1].startswith("```\n")


def test_telegram_counts_utf16_units() -> None:
    text = "😀 " * 3000  # each emoji is two UTF-16 units
    chunks = split_message(text, limit=TELEGRAM_LIMIT, measure=utf16_len)
    assert all(utf16_len(chunk) <= TELEGRAM_LIMIT for chunk in chunks)
    assert max(len(chunk) for chunk in chunks) < TELEGRAM_LIMIT
    assert " ".join(chunks).split() == text.split()


def test_limit_must_hold_something() -> None:
    with pytest.raises(ValueError):
        split_message("abc", limit=0)
    with pytest.raises(ValueError):
        split_message("😀😀", limit=1, measure=utf16_len)


def test_telegram_html_long_code_block() -> None:
    code = "\n".join(f"if a_{i} < b and c & d: yield '{i}'" for i in range(400))
    html = to_telegram_html(f"# Report\n\nSome **bold** text.\n\n```python\n{code}\n```\n\nDone.")
    chunks = split_telegram_html(html)
    assert len(chunks) >= 4
    for chunk in chunks:
        assert utf16_len(chunk) <= TELEGRAM_LIMIT
        assert telegram_html_problems(chunk) == []
    pieces = [piece for chunk in chunks for piece in _PRE.findall(chunk)]
    assert visible_text("\n".join(pieces)) == code
    assert chunks[0].startswith("<b>Report</b>")
    assert chunks[-1].endswith("Done.")


def test_telegram_html_reopens_formatting_and_keeps_entities() -> None:
    bold = "**" + " ".join(["bold & brave"] * 40) + "**"
    chunks = split_telegram_html(to_telegram_html(bold), limit=100)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.startswith("<b>") and chunk.endswith("</b>")
        assert telegram_html_problems(chunk) == []
    no_spaces = to_telegram_html("<&>" * 100)
    for chunk in split_telegram_html(no_spaces, limit=50):
        assert telegram_html_problems(chunk) == [] and utf16_len(chunk) <= 50
        assert re.fullmatch(r"(&lt;|&amp;|&gt;)+", chunk)


def test_telegram_html_sends_plain_text_when_the_tags_leave_no_room() -> None:
    html = to_telegram_html(f"[the link text](https://e.example/{'x' * 80})")
    chunks = split_telegram_html(html, limit=40)
    assert chunks == ["the link text"]


def test_telegram_html_never_separates_a_combining_mark() -> None:
    chunks = split_telegram_html("e\u0301" * 40, limit=11)
    assert all(len(chunk) <= 11 and not chunk.startswith("\u0301") for chunk in chunks)
    assert "".join(chunks) == "e\u0301" * 40


WORDS = st.text(st.sampled_from("ab yz😀é\u0301&\\"), min_size=1, max_size=12)
PLAIN = st.lists(
    st.one_of(WORDS, st.sampled_from([" ", "\n", "\n\n", "  ", "&amp;"])), max_size=60
).map("".join)


@settings(max_examples=300, deadline=None)
@given(PLAIN, st.integers(2, 80), st.sampled_from([len, utf16_len]))
def test_chunks_fit_and_give_back_the_text(
    text: str, limit: int, measure: Callable[[str], int]
) -> None:
    chunks = split_message(text, limit=limit, measure=measure)
    assert all(measure(chunk) <= limit and chunk.strip() for chunk in chunks)
    assert _pieces_of(text, chunks)


CODE_LINE = st.text(st.sampled_from("abc xyz=()+#_ "), max_size=30)
BLOCK = st.one_of(
    st.lists(WORDS, min_size=1, max_size=30).map(" ".join),
    st.tuples(st.sampled_from(["", "python", "sh"]), st.lists(CODE_LINE, max_size=30)).map(
        lambda block: f"```{block[0]}\n" + "".join(line + "\n" for line in block[1]) + "```"
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(BLOCK, min_size=1, max_size=8).map("\n\n".join), st.integers(120, 400))
def test_fences_stay_balanced_and_code_reassembles(text: str, limit: int) -> None:
    chunks = split_message(text, limit=limit)
    code, prose, _ = _code_and_prose(text)
    chunk_code: list[str] = []
    chunk_prose: list[str] = []
    for chunk in chunks:
        assert len(chunk) <= limit
        lines, words, left_open = _code_and_prose(chunk)
        assert not left_open
        chunk_code.extend(lines)
        chunk_prose.extend(words)
    assert chunk_code == code
    assert chunk_prose == prose


@settings(max_examples=300, deadline=None)
@given(MARKDOWN, st.integers(40, 400))
def test_split_telegram_html_chunks_are_valid(markdown: str, limit: int) -> None:
    html = to_telegram_html(markdown)
    chunks = split_telegram_html(html, limit=limit)
    for chunk in chunks:
        assert utf16_len(chunk) <= limit
        assert telegram_html_problems(chunk) == []
    # Only whitespace at the cuts is dropped (a hard cut may fall inside a word).
    shown = "".join(visible_text(chunk) for chunk in chunks)
    assert "".join(shown.split()) == "".join(visible_text(html).split())
