"""PII scanning: :func:`scan` folds the text, runs each detector, maps findings back and settles overlaps.

Why hand-written rather than Presidio: Presidio's pattern recognizers run one regex per recognizer over
the text, each followed by context scoring and an NLP pass; that is milliseconds per message, too slow
to sit on every model call. Here each detector runs only when a cheap pre-check says it can match
(``"@" in text``, a digit, ``"://"``), its patterns start at a literal or a small character set with
every quantifier bounded (so the cost is linear in the text, whatever the input), and the real
work — Luhn, IBAN mod-97, SSN rules, octet ranges, :mod:`ipaddress`, calling-code lengths, entropy —
runs only on candidates. ``benchmarks/guardrails.py`` measures speed, linearity and accuracy against
Presidio in one run.

Before detection the text is folded (:mod:`._normalize`): fullwidth characters, zero-width and tag
characters, Unicode spaces, URL-encoding and ``[at]``/``[dot]`` stop hiding values; findings are
mapped back to the original offsets. Base64 tokens that decode to text carrying an e-mail address or
a secret are reported as that entity.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from agentops.errors import ConfigError
from agentops.guardrails._addresses import scan_emails, scan_ipv6, scan_urls
from agentops.guardrails._normalize import fold
from agentops.guardrails._numbers import scan_ibans, scan_numbers
from agentops.guardrails._secrets import long_runs, scan_secrets
from agentops.guardrails._types import ENTITY_TYPES, Finding

__all__ = ["Scanner", "scan"]

# Overlap resolution: a higher number wins when two findings overlap.
_PRIORITY = {
    "SECRET": 8,
    "CREDIT_CARD": 7,
    "IBAN_CODE": 6,
    "EMAIL_ADDRESS": 5,
    "US_SSN": 4,
    "PHONE_NUMBER": 3,
    "IP_ADDRESS": 2,
    "URL": 1,
}
_DIGITS = "0123456789"
_ENTITY_SET = frozenset(ENTITY_TYPES)
_B64_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,4096}={0,2}(?![A-Za-z0-9+/=])")


def _resolve(found: list[Finding]) -> list[Finding]:
    """Sort by position and settle overlaps: within a cluster of overlapping findings keep the
    highest-priority ones (then the longest), dropping whatever they overlap."""
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f.start, -f.end))
    kept: list[Finding] = []
    cluster: list[Finding] = [found[0]]
    cluster_end = found[0].end
    for f in found[1:]:
        if f.start < cluster_end:
            cluster.append(f)
            cluster_end = max(cluster_end, f.end)
            continue
        kept.extend(_settle(cluster))
        cluster = [f]
        cluster_end = f.end
    kept.extend(_settle(cluster))
    return kept


def _settle(cluster: list[Finding]) -> list[Finding]:
    if len(cluster) == 1:
        return cluster
    ranked = sorted(cluster, key=lambda f: (-_PRIORITY[f.entity_type], f.start - f.end, f.start))
    starts: list[int] = []
    chosen: list[Finding] = []  # kept sorted by start; O(k log k) for a cluster of k findings
    for f in ranked:
        i = bisect.bisect_left(starts, f.start)
        if (i == 0 or chosen[i - 1].end <= f.start) and (i == len(chosen) or f.end <= chosen[i].start):
            starts.insert(i, f.start)
            chosen.insert(i, f)
    return chosen


def _detect(text: str, outer: bool) -> list[Finding]:
    """Every detector on ``text``; ``outer`` is False for decoded payloads (no URLs, no further decoding)."""
    out: list[Finding] = []
    spans = long_runs(text)
    scan_secrets(text, out, spans)
    if "@" in text:
        scan_emails(text, out)
    colon = ":" in text
    if outer and ((colon and "://" in text) or "www." in text or "WWW." in text):
        scan_urls(text, out)
    if any(d in text for d in _DIGITS):
        scan_numbers(text, out)
        scan_ibans(text, out)
    if colon and ("::" in text or text.count(":") >= 3):
        scan_ipv6(text, out)
    if spans and outer:
        _scan_encoded(text, spans, out)
    return out


def _scan_encoded(text: str, spans: list[tuple[int, int]], out: list[Finding]) -> None:
    """Base64 tokens that decode to readable text holding an e-mail address or a secret."""
    for m in (m for s, e in spans if e - s >= 16 for m in _B64_TOKEN.finditer(text, s, e)):
        token = m.group()
        if len(token) % 4 == 1:
            continue
        try:
            decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if not decoded.isprintable() or len(decoded) < 6:
            continue
        inner: list[Finding] = []  # only e-mail addresses and secrets count here: the other detectors are skipped
        scan_secrets(decoded, inner)
        if "@" in decoded:
            scan_emails(decoded, inner)
        if inner:
            kind = "SECRET" if any(f.entity_type == "SECRET" for f in inner) else "EMAIL_ADDRESS"
            out.append(Finding(kind, m.start(), m.end(), 0.8))


def scan(text: str, entities: Iterable[str] | None = None) -> list[Finding]:
    """Find PII and secrets in ``text``; findings are sorted by position and never overlap.

    Args:
        text: any string (a message, tool arguments, a tool result).
        entities: restrict to these entity types (default: all of :data:`ENTITY_TYPES`).

    Returns:
        One :class:`Finding` per entity; ``text[f.start:f.end]`` is the matched value (offsets are
        always into ``text`` itself, even when the value was written with fullwidth digits,
        zero-width characters or URL-encoding).

    Raises:
        ConfigError: ``text`` is not a str, or an unknown entity type was asked for.

    The cost is linear in ``len(text)``; there is no size cap here (the middleware applies one, see
    :attr:`GuardrailPolicy.max_scan_chars`).

    Example:
        >>> [(f.entity_type, f.start, f.end) for f in scan("mail ana@example.org")]
        [('EMAIL_ADDRESS', 5, 20)]
    """
    if not isinstance(text, str):
        raise ConfigError(f"scan() needs a str, got {type(text).__name__}; convert the value with str() first")
    wanted = None
    if entities is not None:
        wanted = set(entities)
        unknown = wanted - _ENTITY_SET
        if unknown:
            raise ConfigError(f"unknown entity type(s) {sorted(unknown)}; choose from {list(ENTITY_TYPES)}")
    if len(text) < 6:
        return []
    folded, starts, ends = fold(text)
    out = _detect(folded, outer=starts is None)
    if starts is not None and ends is not None:
        out = [Finding(f.entity_type, starts[f.start], ends[f.end - 1], f.score) for f in out]
        if "://" in text or "www." in text or "WWW." in text:
            scan_urls(text, out)  # URLs are matched on the text as written: decoding would cut them short
        _scan_encoded(text, long_runs(text), out)
    found = _resolve(out)
    if wanted is not None:
        found = [f for f in found if f.entity_type in wanted]
    return found


@runtime_checkable
class Scanner(Protocol):
    """Anything that maps text to findings; :func:`scan` is the default."""

    def __call__(self, text: str) -> list[Finding]: ...
