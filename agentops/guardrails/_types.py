"""The value types every guardrail module shares: entity names, :class:`Finding`, :class:`Verdict`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["ENTITY_TYPES", "Finding", "Verdict"]

ENTITY_TYPES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "IBAN_CODE",
    "URL",
    "SECRET",
)


class Finding(NamedTuple):
    """One detected entity: its Presidio-style type, ``text[start:end]`` span and a confidence score.

    A named tuple: immutable, cheap to create on the hot path, and it never holds the raw value.
    """

    entity_type: str
    start: int
    end: int
    score: float

    def value(self, text: str) -> str:
        """The matched substring of ``text`` (never stored on the finding itself)."""
        return text[self.start : self.end]


@dataclass(frozen=True)
class Verdict:
    """A detector's decision: ``score`` in [0, 1], ``flagged`` when over the threshold, and why."""

    score: float
    flagged: bool
    reasons: tuple[str, ...] = ()
