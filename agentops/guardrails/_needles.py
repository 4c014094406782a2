"""Which of a fixed set of substrings occur in a text, in one pass.

The detectors' cheap pre-checks are substring tests (``"@" in text``, a key word, a format's literal).
Tested one by one they cost a search of the text each; :class:`Needles` answers them all with one
``re2.Set`` pass when the optional ``google-re2`` package is installed (linear in the text, several
times cheaper than sixty ``in`` tests), and with ``in`` otherwise. Either way the answer is the same
set (tests/test_guardrails_fastpaths.py checks it). :func:`re2_twins` compiles regexes for google-re2 too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Needles", "re2_twins"]


def _compile(needles: tuple[str, ...]) -> object | None:
    try:
        import re2
    except ImportError:
        return None
    matcher = re2.Set.SearchSet(re2.Options())
    for needle in needles:
        matcher.Add(re2.escape(needle))
    matcher.Compile()
    return matcher


class Needles:
    """A fixed set of substrings; calling it with a text returns those that occur in it.

    Example:
        >>> Needles(["@", "://", "key"])("mail ana@example.org")
        frozenset({'@'})
    """

    __slots__ = ("matcher", "needles")

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = tuple(sorted(set(needles)))
        self.matcher = _compile(self.needles)  # None without google-re2

    def __call__(self, text: str) -> frozenset[str]:
        if self.matcher is not None:
            try:
                return frozenset([self.needles[i] for i in self.matcher.Match(text) or ()])
            except UnicodeEncodeError:  # lone surrogates: no UTF-8 form for re2 to read
                pass
        return frozenset(filter(text.__contains__, self.needles))


def re2_twins(patterns: Iterable[re.Pattern[str]]) -> dict[re.Pattern[str], object]:
    """Each pattern compiled by google-re2 too, when it is installed (a DFA: no backtracking, one pass).

    A twin may answer for its pattern only where the engines cannot differ: an ASCII text (re2's ``\\w``,
    ``\\b`` and ``\\d`` are ASCII; ``re``'s agree on ASCII), searched whole (no ``pos``/``endpos``
    window), and without whitespace re2's ``\\s`` leaves out. Whether a match exists and where the
    leftmost one starts do not depend on the engine (lazy or greedy quantifiers only change where a match
    ends), so callers read only that. Patterns re2 cannot compile get no twin.
    """
    try:
        import re2
    except ImportError:
        return {}
    options = re2.Options()
    options.log_errors = False
    twins: dict[re.Pattern[str], object] = {}
    for pattern in patterns:
        try:
            twins[pattern] = re2.compile(pattern.pattern, options)
        except re2.error:
            continue
    return twins
