"""Splitting a long answer into messages that fit a platform's limit.

What is counted: :func:`split_message` counts with ``measure``, ``len`` (code points) by
default; Discord and Slack count characters. Telegram counts UTF-16 code units of the
text after parsing the markup, so for Telegram pass ``measure=utf16_len``, and
:func:`split_telegram_html` counts the UTF-16 units of the HTML itself, tags and entities
included: more than Telegram counts, never less. ``measure`` must be additive over
concatenation, as both are.

Where a message is cut: at a blank line if one falls in the second half of the room left,
else at a line end, else at a space, then the same anywhere, else hard (never inside an
``&entity;``, after a backslash escape, or before a combining character). The whitespace
at a cut is dropped. A cut inside a fenced code block closes the fence at the end of the
chunk and reopens it, with the same info string, at the start of the next; code is only
cut at line ends unless a single line is longer than the room.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

TELEGRAM_LIMIT = 4096
"""Telegram: UTF-16 code units of a message's text (``sendMessage``)."""
DISCORD_LIMIT = 2000
"""Discord: characters of a message's ``content``."""
SLACK_LIMIT = 3000
"""Slack: characters of a section block's text (a message's ``text`` is cut at 40,000)."""

Measure = Callable[[str], int]

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_ENTITY = re.compile(r"&#?\w{1,10};")
_JOINERS = "\u200d\ufe0f"


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, as Telegram counts it."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True)
class _Fence:
    start: int  # offset of the opening line
    body: int  # offset after the opening line's newline
    close_start: int  # offset of the closing line (len(text) when never closed)
    end: int  # offset after the closing line, before its newline
    opener: str  # the opening line, repeated to reopen the block
    closer: str  # the fence that closes it


def _fences(text: str) -> list[_Fence]:
    fences: list[_Fence] = []
    opened: tuple[int, int, str, str] | None = None  # start, body, marker, opener
    offset = 0
    for line in text.split("\n"):
        line_start, offset = offset, offset + len(line) + 1
        if opened is None:
            match = _FENCE.fullmatch(line)
            if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                opened = (line_start, min(offset, len(text)), match.group(1), line.lstrip(" "))
            continue
        start, body, marker, opener = opened
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if indent <= 3 and set(stripped) == {marker[0]} and len(stripped) >= len(marker):
            fences.append(_Fence(start, body, line_start, line_start + len(line), opener, marker))
            opened = None
    if opened is not None:
        start, body, marker, opener = opened
        fences.append(_Fence(start, body, len(text), len(text), opener, marker))
    return fences


class _Splitter:
    def __init__(self, text: str, *, limit: int, measure: Measure) -> None:
        self.text, self.limit, self.measure = text, limit, measure
        fences = _fences(text)
        overhead = max(
            (measure(f.opener + "\n") + measure("\n" + f.closer) for f in fences), default=0
        )
        # Repairing fences costs room in every chunk; with a tiny limit it is not done.
        self.fences = fences if 4 * overhead <= limit else []
        closers = [f.closer for f in self.fences]
        self.reserve = "\n" + max(closers, key=measure) if closers else ""

    def fence_at(self, cut: int) -> _Fence | None:
        return next((f for f in self.fences if f.start < cut < f.end), None)

    def chunks(self) -> list[str]:
        text, out = self.text, []
        pos, reopen = 0, ""
        while pos < len(text):
            rest = reopen + text[pos:]
            if self.measure(rest) <= self.limit:
                out.append(rest)
                break
            end = self.max_end(pos, reopen)
            cut, after = self.settle(pos, end, *self.cut(pos, end))
            chunk = reopen + text[pos:cut]
            fence = self.fence_at(cut)
            reopen = ""
            if fence is not None:
                chunk += "\n" + fence.closer
                if after >= fence.close_start:
                    after = fence.end  # our closer stands for the original one
                else:
                    reopen = fence.opener + "\n"
            out.append(chunk)
            pos = after
        return [chunk for chunk in out if chunk.strip()]

    def max_end(self, pos: int, reopen: str) -> int:
        """The furthest end of a chunk from ``pos`` that fits with its fence repairs."""
        low, high = pos, len(self.text)
        while low < high:
            mid = (low + high + 1) // 2
            if self.measure(reopen + self.text[pos:mid] + self.reserve) <= self.limit:
                low = mid
            else:
                high = mid - 1
        if low == pos:
            raise ValueError(f"limit {self.limit} is too small for the text")
        return low

    def cut(self, pos: int, end: int) -> tuple[int, int]:
        """Where to end the chunk (``cut``) and start the next (``after``)."""
        text = self.text
        for floor in (pos + (end - pos) // 2, pos):
            cut = text.rfind("\n\n", floor + 1, end + 2)
            if cut != -1:
                after = cut + 1
                # Blank lines between paragraphs go; blank lines in code are code.
                while self.fence_at(cut) is None and after < len(text) and text[after] == "\n":
                    after += 1
                return cut, after
            cut = text.rfind("\n", floor + 1, end + 1)
            if cut != -1:
                return cut, cut + 1
            cut = self.space(floor, end)
            if cut != -1:
                after = cut
                while after < len(text) and text[after] == " ":
                    after += 1
                return cut, after
        cut = self.hard(pos, end)
        return cut, cut

    def space(self, floor: int, end: int) -> int:
        """The last space in ``(floor, end]`` outside code, or -1."""
        cut = self.text.rfind(" ", floor + 1, end + 1)
        while cut != -1:
            fence = self.fence_at(cut)
            if fence is None or cut >= fence.close_start:
                return cut
            cut = self.text.rfind(" ", floor + 1, fence.start)
        return -1

    def hard(self, pos: int, end: int) -> int:
        text, cut = self.text, end
        amp = text.rfind("&", max(pos + 1, cut - 11), cut)
        if amp != -1:
            entity = _ENTITY.match(text, amp)
            if entity and entity.end() > cut:
                cut = amp
        if cut - 1 > pos and text[cut - 1] == "\\":
            cut -= 1
        while cut - 1 > pos and (
            unicodedata.combining(text[cut]) or text[cut] in _JOINERS or text[cut - 1] == "\u200d"
        ):
            cut -= 1
        return cut

    def settle(self, pos: int, end: int, cut: int, after: int) -> tuple[int, int]:
        """Keep fence lines whole, and never end a chunk with an empty code block.

        A cut inside or right after an opening line, or inside a closing line, moves
        before that line; when the chunk starts with the fence, it cuts into the code.
        """
        for fence in self.fences:
            at_opener = fence.start < cut <= fence.body - 1
            if at_opener or fence.close_start < cut < fence.end:
                line = fence.start if at_opener else fence.close_start
                if line - 1 > pos:
                    return line - 1, line
                hard = self.hard(pos, end)
                if at_opener and hard >= fence.body:
                    return hard, hard
        return cut, after


def split_message(text: str, *, limit: int, measure: Measure = len) -> list[str]:
    """``text`` cut into chunks of at most ``limit`` (counted by ``measure``).

    Returns ``[]`` for text with nothing to show, ``[text]`` when it fits. Fenced code
    blocks cut across chunks are closed and reopened, so each chunk renders on its own.
    Raises ``ValueError`` when ``limit`` cannot hold a single character.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    if not text.strip():
        return []
    if measure(text) <= limit:
        return [text]
    return _Splitter(text, limit=limit, measure=measure).chunks()
