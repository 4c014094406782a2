"""Toxicity detection: the :class:`ToxicityDetector` protocol, a lexicon default, a callable adapter."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from agentops.errors import ConfigError
from agentops.guardrails._types import Verdict
from agentops.guardrails.injection import normalize

__all__ = ["CallableToxicity", "LexiconToxicity", "ToxicityDetector"]


@runtime_checkable
class ToxicityDetector(Protocol):
    """Anything that scores text for toxicity; plug in a model-based one without code changes."""

    def __call__(self, text: str) -> Verdict: ...


_TOXIC_WORDS = {
    "insult": (
        "idiot",
        "idiots",
        "moron",
        "morons",
        "imbecile",
        "cretin",
        "dumbass",
        "jackass",
        "loser",
        "losers",
        "scumbag",
        "worthless piece of",
        "pathetic excuse",
    ),
    "profanity": (
        "fuck",
        "fucking",
        "fucker",
        "motherfucker",
        "shit",
        "shitty",
        "bullshit",
        "asshole",
        "bastard",
        "bitch",
        "cunt",
        "dickhead",
        "piss off",
        "wanker",
    ),
}
_TOXIC_PHRASES = {
    "threat": re.compile(
        r"\b(?:i(?:'ll| will| am going to|'m going to|m gonna| gonna)|we(?:'ll| will)) (?:\w+ )?(?:kill|hurt|"
        r"destroy|beat|stab|shoot|find) (?:you|u|him|her|them|your family)\b|\b(?:kill|hang|shoot) "
        r"yourself\b|\bkys\b|\byou(?:'re| are) (?:dead|going to die)\b|\bwatch your back\b"
    ),
    "harassment": re.compile(
        r"\b(?:shut (?:the fuck )?up|go to hell|nobody (?:likes|wants) you|"
        r"you(?:'re| are) (?:so )?(?:stupid|dumb|useless|worthless|pathetic))\b"
    ),
}


class LexiconToxicity:
    """Word-boundary lexicon and phrase matching (``"threat model"`` and ``"kill the process"`` pass).

    A small, explainable default. For production, plug in a classifier through
    :class:`CallableToxicity` — the :class:`GuardrailPolicy` accepts any :class:`ToxicityDetector`.

    Args:
        threshold: ``flagged`` is ``score >= threshold``.
        extra_words: more words per category, e.g. ``{"insult": ["nitwit"]}``.
    """

    def __init__(self, threshold: float = 0.5, extra_words: Mapping[str, Sequence[str]] | None = None) -> None:
        words: dict[str, list[str]] = {k: list(v) for k, v in _TOXIC_WORDS.items()}
        for cat, more in (extra_words or {}).items():
            words.setdefault(cat, []).extend(more)
        self.threshold = threshold
        self._words = {
            cat: re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, ws), key=len, reverse=True)) + r")\b")
            for cat, ws in words.items()
        }

    def __call__(self, text: str) -> Verdict:
        low = normalize(text)
        hits: dict[str, int] = {}
        for cat, pattern in self._words.items():
            n = len(pattern.findall(low))
            if n:
                hits[cat] = n
        for cat, pattern in _TOXIC_PHRASES.items():
            n = len(pattern.findall(low))
            if n:
                hits[cat] = hits.get(cat, 0) + n
        if not hits:
            return Verdict(0.0, False, ())
        base = {"threat": 0.9, "harassment": 0.7, "insult": 0.6, "profanity": 0.5}
        keep = 1.0
        for cat, n in hits.items():
            keep *= (1.0 - base.get(cat, 0.6)) ** n
        score = round(1.0 - keep, 4)
        return Verdict(score, score >= self.threshold, tuple(sorted(hits)))


class CallableToxicity:
    """Adapt any ``text -> probability`` function (e.g. a transformers classifier) to the protocol.

    Args:
        fn: returns a toxicity probability in [0, 1].
        threshold: ``flagged`` is ``score >= threshold``.
        label: the reason recorded when flagged.
    """

    def __init__(self, fn: Callable[[str], float], threshold: float = 0.5, label: str = "toxic") -> None:
        self.fn = fn
        self.threshold = threshold
        self.label = label

    def __call__(self, text: str) -> Verdict:
        score = float(self.fn(text))
        if not 0.0 <= score <= 1.0:
            raise ConfigError(f"toxicity function returned {score!r}; it must return a probability in [0, 1]")
        flagged = score >= self.threshold
        return Verdict(score, flagged, (self.label,) if flagged else ())
