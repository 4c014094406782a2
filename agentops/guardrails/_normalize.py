"""Fold text before scanning, keeping a map back to the original offsets.

Shapes that hide PII from plain patterns: fullwidth digits and ``＠`` (NFKC), zero-width characters and
Unicode tag characters inside numbers and keywords (removed), non-breaking and other Unicode spaces
(one ASCII space), URL-encoding (``%40``, ``%20`` and digits/letters decoded), and bracketed ``[at]`` /
``[dot]``. Folding is one pass over the text; ASCII text without ``%`` or brackets is returned unchanged
without copying, which is the common case.

Each folded character remembers the span of original text it came from, so a finding on the folded
text maps back to exactly the characters a redaction must replace.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["fold", "squash_spaces"]

_DROP = frozenset("\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f")
_OBFUSCATED = re.compile(r"[\[({](?:at|dot)[\])}]|%[0-9A-Fa-f]{2}", re.IGNORECASE)
_WORDS = {"at": "@", "dot": "."}
_ASCII_TRIGGERS = ("%", "[at]", "(at)", "{at}", "[AT]", "(AT)", "[dot]", "(dot)", "[DOT]", "(DOT)")


@lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    """What one non-ASCII character becomes: removed, a space, its NFKC form if ASCII, or itself."""
    if c in _DROP or "\U000e0000" <= c <= "\U000e007f":
        return ""
    if c.isspace() or unicodedata.category(c) == "Zs":
        return " " if c not in "\n\r" else c
    folded = unicodedata.normalize("NFKC", c)
    return folded if folded.isascii() else c


def _decode(token: str) -> str | None:
    if token[0] == "%":
        ch = chr(int(token[1:], 16))
        return ch if (ch.isalnum() or ch in "@.+-_: ") else None
    return _WORDS[token[1:-1].lower()]


_BRACKET_TRIGGERS = frozenset(_ASCII_TRIGGERS[1:])


def _ascii_trigger(text: str) -> bool:
    """``any(t in text for t in _ASCII_TRIGGERS)``, looking only at each opening bracket (few in most text)."""
    if "%" in text:
        return True
    for opener in "[({":
        i = text.find(opener)
        for _ in range(16):
            if i == -1:
                break
            if text[i : i + 4] in _BRACKET_TRIGGERS or text[i : i + 5] in _BRACKET_TRIGGERS:
                return True
            i = text.find(opener, i + 1)
        else:
            if i != -1:  # many brackets: one substring search per trigger
                return any(map(text.__contains__, _ASCII_TRIGGERS))
    return False


def fold(text: str) -> tuple[str, list[int] | None, list[int] | None]:
    """``(folded, starts, ends)``: ``folded[i]`` comes from ``text[starts[i]:ends[i]]``.

    ``starts`` and ``ends`` are None when nothing changed (then ``folded is text``).

    Example:
        >>> folded, starts, ends = fold("card\u00a04111\u200b1111")
        >>> folded, starts[5], ends[8]
        ('card 41111111', 5, 9)
    """
    if text.isascii() and not _ascii_trigger(text):
        return text, None, None
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "%[({" and (m := _OBFUSCATED.match(text, i)) is not None and (d := _decode(m.group())):
            out.append(d)
            starts.append(i)
            ends.append(m.end())
            i = m.end()
            continue
        piece = c if c.isascii() else _fold_char(c)
        for ch in piece:
            out.append(ch)
            starts.append(i)
            ends.append(i + 1)
        i += 1
    folded = "".join(out)
    if folded == text:
        return text, None, None
    return folded, starts, ends


_ASCII_SPACES = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # the ASCII whitespace of str.split() but " "


def squash_spaces(t: str) -> str:
    r"""``re.sub(r"\s+", " ", t)`` done with ``str.split``/``join`` (C loops; several times faster).

    Example:
        >>> squash_spaces("  a \n b ")
        ' a b '
    """
    if t.isascii() and not any(map(t.__contains__, _ASCII_SPACES)):  # only " ": halve runs of them in C
        while "  " in t:
            t = t.replace("  ", " ")
        return t
    core = " ".join(t.split())
    if not core:
        return " " if t else ""
    return (" " if t[0].isspace() else "") + core + (" " if t[-1].isspace() else "")
