"""Normalization of text before the injection rules see it (see ``core.security.injection``).

:func:`views` turns one text into the few strings the rules are matched against, each
tagged with where it came from:

* ``""``: the text itself after removing invisible characters (zero-width, bidi controls,
  Unicode tag characters), NFKC (fullwidth and "mathematical" letters become ASCII),
  folding Cyrillic/Greek homoglyphs to Latin, lower-casing and collapsing whitespace;
* ``"obfuscation.spaced"`` / ``"obfuscation.leetspeak"``: the same with ``i g n o r e``,
  ``i.g.n.o.r.e`` or ``1gn0r3`` collapsed back into words, only when the text has them;
* ``"decoded.*"``: text hidden in the input: ASCII smuggled in tag characters, base64, hex,
  URL-encoding, HTML entities, rot13 and reversed text, each decoded and normalized the
  same way (and decoded once more, for one level of nesting).

Every step is bounded: at most
:data:`MAX_SEGMENTS` encoded segments are decoded, and decoded text is capped at
:data:`MAX_DECODED_CHARS`, so a huge or adversarial input costs linear time with a small
constant. Findings about the obfuscation itself (``obfuscation.zero_width`` ...) are
returned too; the defender decides how much they weigh.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

MAX_SEGMENTS = 8
MAX_SEGMENT_CHARS = 8_192
MAX_DECODED_CHARS = 16_384
_MIN_PRINTABLE = 0.85

# Characters that render as nothing (or only change direction) and so can hide words.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad\u034f"
_BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
_VARIATION = "".join(chr(c) for c in range(0xFE00, 0xFE10))
_TAG_FIRST, _TAG_LAST = 0xE0000, 0xE007F
_INVISIBLE = {ord(c): None for c in _ZERO_WIDTH + _BIDI + _VARIATION}
_INVISIBLE.update({c: None for c in range(_TAG_FIRST, _TAG_LAST + 1)})
_INVISIBLE.update({c: None for c in range(0xE0100, 0xE01F0)})  # variation selectors supplement
_ZW_RE = re.compile(f"[{_ZERO_WIDTH}]")
_BIDI_RE = re.compile(f"[{_BIDI}]")
_TAG_RE = re.compile("[\U000e0000-\U000e007f]+")
_VS_SUPPLEMENT_RE = re.compile("[\U000e0100-\U000e01ef]")
_WAVING_BLACK_FLAG = "\U0001f3f4"  # subdivision flags (England, Scotland) are tag sequences
_EMOJI_NEIGHBOUR = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf]")

# Latin look-alikes from Cyrillic, Greek and a few other blocks, after NFKC.
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k",
        "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "ѕ": "s", "т": "t", "у": "y",
        "х": "x", "ԝ": "w", "ү": "y", "ӏ": "l", "ё": "e", "ї": "i", "г": "r", "п": "n",
        "А": "a", "В": "b", "С": "c", "Е": "e", "Н": "h", "І": "i", "Ј": "j", "К": "k",
        "М": "m", "О": "o", "Р": "p", "Ѕ": "s", "Т": "t", "У": "y", "Х": "x", "Ү": "y",
        "α": "a", "β": "b", "γ": "y", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "η": "n", "ς": "s", "μ": "u",
        "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m",
        "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x",
        "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʏ": "y", "ᴀ": "a", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e",
        "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w",
        "ı": "i", "ȷ": "j", "ℓ": "l", "ԁ": "d", "ѵ": "v", "ʀ": "r",
        "ɴ": "n", "ɪ": "i", "ʜ": "h", "ʟ": "l", "ꜱ": "s", "օ": "o", "ս": "u", "ո": "n",
        "հ": "h", "ց": "g", "ɾ": "r", "Ꭺ": "a", "Ᏼ": "b", "Ꮯ": "c", "Ꭼ": "e",
    }
)  # fmt: skip
_CONFUSABLE_CHARS = frozenset(chr(k) for k in _CONFUSABLES)
_WS = re.compile(r"\s+")

# i g n o r e / i.g.n.o.r.e / i-g-n-o-r-e / i*g*n*o*r*e: single letters and one separator.
_SPACED = re.compile(r"(?<![\w])(?:\w(?:[ .\-_*|/+~]|\s{2,4}|\s?/\s?|\.\.|--|__)){3,}\w(?![\w])")
_MARK = re.compile(r"[.\-_*|/+~]")
_WORD_GAP = re.compile(r"\s{2,}|\s/\s|\.\.+|--+|__+")
_SPLAT = re.compile(r"[*~^]+")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                       "@": "a", "$": "s", "!": "i", "9": "g", "6": "g", "2": "z", "|": "l"})  # fmt: skip  # noqa: E501
_LEET_TOKEN = re.compile(r"\b(?=[a-z@$!|]*[0-9])(?=[0-9@$!|]*[a-z])[a-z0-9@$!|]{2,}\b")
_WORD = re.compile(r"\w+")

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{16,}={0,2}(?![A-Za-z0-9+/=_\-])")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2}(?:[ :,]|\\x|0x)?){12,}")
_HEXDIGIT = re.compile(r"[0-9A-Fa-f]")
_DIGIT = re.compile(r"\d")
_CASE_MIX = re.compile(r"[a-z][A-Z]")
_ALPHA_WORD = re.compile(r"[a-z]{4,}")
_SPACING = re.compile(r"[ .\-_*|/+~]")
_HEX_NOISE = re.compile(r"\\x|0x|[ :,]")
_URLENC = re.compile(r"(?:%[0-9A-Fa-f]{2}[^\s%]{0,3}){3,}")
_ENTITY = re.compile(r"&(?:#\d{2,6}|#x[0-9a-fA-F]{2,6}|[a-zA-Z]{2,8});")
# rot13 and reversed spellings of the words injections are made of (ignore, instructions,
# previous, system, prompt, disregard, reveal, repeat, output, response, password, secret).
_ROT13_HINT = frozenset(
    "vtaber vafgehpgvba vafgehpgvbaf cerivbhf flfgrz cebzcg qvfertneq erirny ercrng bhgchg"
    " erfcbafr cnffjbeq frperg".split()
)
_REVERSED_HINT = ("snoitcurtsni", "tpmorp", "erongi", "drageresid", "suoiverp", "metsys")


@dataclass(frozen=True, slots=True)
class View:
    """One normalized reading of the input, its ``\\w+`` tokens, and where it came from."""

    origin: str  # "" for the text itself, else "decoded.base64", "obfuscation.spaced" ...
    text: str
    tokens: frozenset[str]


def _view(origin: str, text: str) -> View:
    return View(origin, text, frozenset(_WORD.findall(text)))


@dataclass
class Normalized:
    """The views of one text and what normalizing it revealed."""

    views: list[View] = field(default_factory=list)
    findings: set[str] = field(default_factory=set)
    decoded_chars: int = 0
    scrambled: Mapping[str, str] = field(default_factory=dict)


def scramble_key(word: str) -> str:
    """The letters of ``word`` in order: equal for ``instructions`` and ``isntrcutoins``."""
    return "".join(sorted(word))


def scramble_index(vocabulary: Iterable[str]) -> dict[str, str]:
    """Keys of scrambled words -> the word, where unambiguous.

    Two kinds of key: the sorted letters (any shuffle), and, prefixed with ``-``, the
    sorted letters less one (a shuffle plus one mistyped or shifted letter).
    """
    index: dict[str, str | None] = {}

    def add(key: str, word: str) -> None:
        index[key] = word if index.get(key, word) == word else None

    for word in vocabulary:
        if len(word) >= 4 and word.isalpha():
            key = scramble_key(word)
            add(key, word)
            if len(word) >= 6:
                for i in range(len(key)):
                    add("-" + key[:i] + key[i + 1 :], word)
    return {key: word for key, word in index.items() if word is not None}


def _unscramble(word: str, index: Mapping[str, str]) -> str:
    key = scramble_key(word)
    found = index.get(key)
    if found is not None or len(word) < 6:
        return found or word
    candidates = {index.get("-" + key[:i] + key[i + 1 :]) for i in range(len(key))}
    candidates.discard(None)
    return candidates.pop() if len(candidates) == 1 else word  # type: ignore[return-value]


def normalize(text: str, *, scrambled: Mapping[str, str] | None = None) -> Normalized:
    """All views of ``text`` (the plain normalized text has the empty origin).

    ``scrambled`` (from :func:`scramble_index`) restores words whose middle letters were
    shuffled, in texts whose random capitalization gives them away (``IgNroE``). The
    caller bounds the length of ``text``; decoding is bounded here.
    """
    out = Normalized(scrambled=scrambled or {})
    _add_views(out, text, origin="", depth=0)
    return out


def _add_views(out: Normalized, text: str, *, origin: str, depth: int) -> None:
    cleaned = text
    if not text.isascii():
        cleaned = _strip_invisible(out, text)
        cleaned = unicodedata.normalize("NFKC", cleaned)
        if has_mixed_script(cleaned):
            out.findings.add("obfuscation.homoglyph")
    view = _view(origin, _fold(cleaned))
    out.views.append(view)
    _add_deobfuscated(out, view, cleaned)
    mixed = len(_CASE_MIX.findall(cleaned, 0, MAX_SEGMENT_CHARS)) if out.scrambled else 0
    if mixed >= 3 and mixed * 5 >= len(view.tokens):
        _add_unscrambled(out, view)
    if depth >= 2 or out.decoded_chars >= MAX_DECODED_CHARS:
        return
    for kind, decoded in _decoded_segments(cleaned, view):
        if out.decoded_chars >= MAX_DECODED_CHARS:
            break
        decoded = decoded[: MAX_DECODED_CHARS - out.decoded_chars]
        out.decoded_chars += len(decoded)
        _add_views(out, decoded, origin=origin or f"decoded.{kind}", depth=depth + 1)


def _strip_invisible(out: Normalized, text: str) -> str:
    tags = [m for m in _TAG_RE.finditer(text) if not _is_flag_sequence(text, m.start())]
    if tags:
        out.findings.add("obfuscation.unicode_tags")
        hidden = "".join(
            chr(ord(c) - _TAG_FIRST)
            for m in tags
            for c in m.group()
            if 0xE0020 <= ord(c) <= 0xE007E
        )
        if hidden.strip():
            out.views.append(_view("decoded.unicode_tags", _fold(hidden[:MAX_DECODED_CHARS])))
    if _has_hiding_zero_width(text):
        out.findings.add("obfuscation.zero_width")
    if _BIDI_RE.search(text):
        out.findings.add("obfuscation.bidi")
    if len(_VS_SUPPLEMENT_RE.findall(text, 0, 4096)) >= 8:
        out.findings.add("obfuscation.variation_selectors")
    return text.translate(_INVISIBLE)


def _is_flag_sequence(text: str, start: int) -> bool:
    return start > 0 and text[start - 1] == _WAVING_BLACK_FLAG


def _has_hiding_zero_width(text: str) -> bool:
    """Zero-width characters anywhere but inside emoji sequences (where ZWJ is normal)."""
    for match in _ZW_RE.finditer(text):
        before = text[match.start() - 1 : match.start()]
        after = text[match.end() : match.end() + 1]
        if match.group() == "\u200d" and (
            _EMOJI_NEIGHBOUR.match(before) or _EMOJI_NEIGHBOUR.match(after)
        ):
            continue
        if match.group() in "\u200c\u200d" and not (before.isascii() and after.isascii()):
            continue  # ZWNJ/ZWJ shape Persian, Indic and other scripts
        if match.group() == "\ufeff" and match.start() == 0:
            continue  # byte-order mark
        return True
    return False


def _fold(text: str) -> str:
    """NFKC, homoglyphs to Latin, lower case, one space for any whitespace run."""
    return _WS.sub(" ", _fold_chars(text)).strip()


def _fold_chars(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        if not _CONFUSABLE_CHARS.isdisjoint(text):
            text = text.translate(_CONFUSABLES)
    return text.lower()


def has_mixed_script(text: str) -> bool:
    """True when a word mixes Latin letters with look-alikes from another script."""
    if text.isascii():
        return False
    return any(
        not _CONFUSABLE_CHARS.isdisjoint(word) and any("a" <= c <= "z" for c in word.lower())
        for word in text.split()
    )


def _add_deobfuscated(out: Normalized, view: View, cleaned: str) -> None:
    folded, origin = view.text, view.origin
    if sum(1 for token in view.tokens if len(token) == 1) >= 3:
        # Before whitespace is collapsed: "i g n o r e   a l l" keeps its word gaps.
        lowered = _fold_chars(cleaned)
        spans = [m.span() for m in _SPACED.finditer(lowered)]
        if spans:
            joined = _excerpts(lowered, spans, lambda t: _WS.sub(" ", _SPACED.sub(_unspace, t)))
            out.views.append(_view(origin or "obfuscation.spaced", joined))
    if "*" in folded or "~" in folded or "^" in folded:
        spans = [m.span() for m in _SPLAT.finditer(folded)]
        if spans:
            unsplat = _excerpts(folded, spans, lambda t: _WS.sub(" ", _SPLAT.sub("", t)))
            out.views.append(_view(origin or "obfuscation.spaced", unsplat))
    if _DIGIT.search(folded):
        spans = [m.span() for m in _LEET_TOKEN.finditer(folded)]
        if len(spans) >= 3:
            deleet = _excerpts(folded, spans, lambda t: t.translate(_LEET))
            out.views.append(_view(origin or "obfuscation.leetspeak", deleet))


def _unspace(match: re.Match[str]) -> str:
    run = match.group()
    # "i.g.n.o.r.e a.l.l": letters joined by one mark, words by another (here a space).
    mixed = " " in run and _MARK.search(run) is not None
    words = _WS.split(run) if mixed else _WORD_GAP.split(run)
    return " ".join(_SPACING.sub("", word) for word in words)


def _excerpts(text: str, spans: list[tuple[int, int]], transform: Callable[[str], str]) -> str:
    """``transform`` applied to the parts of ``text`` around ``spans`` (with some context).

    A long benign text with one odd spot then costs the rules a few hundred characters,
    not a second full copy; an obfuscated text is one span after merging.
    """
    merged: list[list[int]] = []
    for start, end in spans:
        start, end = max(0, start - _CONTEXT), min(len(text), end + _CONTEXT)
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return "\n".join(transform(text[start:end]) for start, end in merged)


def _add_unscrambled(out: Normalized, view: View) -> None:
    index = out.scrambled
    spans = [m.span() for m in _ALPHA_WORD.finditer(view.text) if m.group() not in index]
    spans = [
        (start, end)
        for start, end in spans
        if _unscramble(view.text[start:end], index) != view.text[start:end]
    ]
    if spans:

        def restore(match: re.Match[str]) -> str:
            return _unscramble(match.group(), index)

        restored = _excerpts(view.text, spans, lambda t: _ALPHA_WORD.sub(restore, t))
        out.views.append(_view(view.origin or "obfuscation.scrambled", restored))


def _decoded_segments(cleaned: str, view: View) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    budget = [MAX_SEGMENTS]
    for kind, pattern, decode in _SEGMENT_DECODERS:
        if kind == "url" and "%" not in cleaned:
            continue
        decoded = _splice(cleaned, pattern, decode, budget)
        if decoded:
            found.append((kind, decoded))
    if "&" in cleaned and _ENTITY.search(cleaned):
        found.append(("html_entities", html.unescape(cleaned[:MAX_SEGMENT_CHARS])))
    if not _ROT13_HINT.isdisjoint(view.tokens):
        found.append(("rot13", codecs.encode(cleaned[:MAX_SEGMENT_CHARS], "rot13")))
    if any(hint in view.text for hint in _REVERSED_HINT):
        found.append(("reversed", cleaned[:MAX_SEGMENT_CHARS][::-1]))
    return found


def _splice(
    text: str,
    pattern: re.Pattern[str],
    decode: Callable[[str], str | None],
    budget: list[int],
) -> str | None:
    """The decoded segments of ``text``, with the short plain gaps between them kept.

    An encoder that leaves some words in clear (``<hex> TEST <hex>``) splits the payload;
    keeping gaps of up to :data:`_GAP` characters puts the sentence back together.
    """
    pieces: list[str] = []
    last_end = -1
    for match in pattern.finditer(text):
        if budget[0] <= 0:
            break
        budget[0] -= 1
        decoded = decode(match.group()[:MAX_SEGMENT_CHARS])
        if decoded is None:
            continue
        if pieces:
            gap = text[last_end : match.start()]
            pieces.append(gap if len(gap) <= _GAP else "\n")
        pieces.append(decoded)
        last_end = match.end()
    return "".join(pieces) if pieces else None


def _url(segment: str) -> str | None:
    decoded = unquote(segment)
    return decoded if decoded != segment else None


def _printable(text: str) -> bool:
    if not text:
        return False
    good = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return good >= _MIN_PRINTABLE * len(text) and any(c.isalpha() for c in text)


def _b64(segment: str) -> str | None:
    data = segment.rstrip("=")
    if not (any(c.isdigit() or c in "+/_-" for c in data) or _has_case_mix(data)):
        return None  # a plain long word, not an encoding
    data += "=" * (-len(data) % 4)
    try:
        raw = base64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return decoded if _printable(decoded) else None


def _has_case_mix(data: str) -> bool:
    upper = sum(1 for c in data if c.isupper())
    return 2 <= upper <= len(data) - 2


def _hex(segment: str) -> str | None:
    digits = _HEX_NOISE.sub("", segment)
    if len(digits) < 24:
        return None
    if len(digits) % 2 == 0:
        try:
            decoded = bytes.fromhex(digits).decode("utf-8")
        except ValueError:
            decoded = ""
        if _printable(decoded):
            return decoded
    return _hex_resync(digits)


def _hex_resync(digits: str) -> str | None:
    """Decode hex in which some digits were left in clear (``...2720 100 2074...``).

    A pair that decodes to a control character is taken as one clear digit instead, which
    puts the decoding back in step with the pairs that follow.
    """
    out = bytearray()
    index = 0
    while index + 1 < len(digits):
        byte = int(digits[index : index + 2], 16)
        if byte >= 0x20 or byte in (0x09, 0x0A, 0x0D):
            out.append(byte)
            index += 2
        else:
            out.extend(digits[index].encode())
            index += 1
    decoded = out.decode("utf-8", errors="replace")
    if decoded.count("\ufffd") * 20 > len(decoded):
        return None
    return decoded if _printable(decoded) else None


_GAP = 64
_CONTEXT = 200
_SEGMENT_DECODERS: tuple[tuple[str, re.Pattern[str], Callable[[str], str | None]], ...] = (
    ("base64", _BASE64, _b64),
    ("hex", _HEX, _hex),
    ("url", _URLENC, _url),
)
