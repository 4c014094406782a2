"""Which of a fixed set of substrings occur in a text, in one pass.

The detectors' cheap pre-checks are substring tests (``"@" in text``, a key word, a format's literal).
Tested one by one they cost a search of the text each; :class:`Needles` answers them all with one
``re2.Set`` pass when the optional ``google-re2`` package is installed (linear in the text, several
times cheaper than sixty ``in`` tests), and with ``in`` otherwise. Either way the answer is the same
set (tests/test_guardrails_fastpaths.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Needles"]


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

    __slots__ = ("_set", "needles")

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = tuple(sorted(set(needles)))
        self._set = _compile(self.needles)

    def __call__(self, text: str) -> frozenset[str]:
        if self._set is not None:
            try:
                return frozenset([self.needles[i] for i in self._set.Match(text) or ()])
            except UnicodeEncodeError:  # lone surrogates: no UTF-8 form for re2 to read
                pass
        return frozenset(filter(text.__contains__, self.needles))
