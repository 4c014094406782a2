"""PII scanning: :func:`scan` over candidate patterns validated in Python; overlaps settled by priority."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from agentops.errors import ConfigError
from agentops.guardrails._secrets import _scan_secrets
from agentops.guardrails._types import ENTITY_TYPES, Finding
from agentops.guardrails._validators import (
    _card_network_ok,
    _iban_ok,
    _luhn_ok,
    _phone_ok,
    _ssn_ok,
)

__all__ = ["Scanner", "scan"]

# ==================================================================================================
# Candidate patterns. Each starts with a literal or a small character set (so the regex engine can
# skip ahead in C), runs only when a cheap prefilter passes, and leaves boundary checks and
# validation to Python on the few candidates it returns.
# ==================================================================================================

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])"
)
_URL_REST = re.compile(r"[^\s<>\"'`]+")
_URL_TRAIL = ".,;:!?)]}'\""
_SCHEMES = ("http", "https", "ftp", "ws", "wss")
# Digit groups: cards, SSNs, phone numbers.
_NUMERIC = re.compile(r"[+(0-9][0-9 ().-]{5,24}[0-9]")
_IPV4_SHAPE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_NUMERIC_BAD_BEFORE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/+-#$€£")
_SEPARATORS = str.maketrans("", "", " ().-+")
_HEX_COLON_RUN = re.compile(r"[0-9A-Fa-f:]{2,45}")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_IBAN = re.compile(r"[A-Z][A-Z][0-9][0-9](?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|\bversion\s*|\brelease\s*|\bbuild\s*|\bver\.?\s*)$")
_PHONE_CONTEXT = re.compile(r"(?i)(?:phone|call|tel|mobile|cell|fax|sms|text me|whatsapp|reach me|contact)\b")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social security|soc\.? ?sec)")
_CARD_SHAPE = re.compile(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -]?)\d{6}\2\d{4,5}|\d{12,19}")
_SSN_SHAPE = re.compile(r"(\d{3})([- ]?)(\d{2})\2(\d{4})")
_PHONE_SHAPE = re.compile(r"(?:(?:\+|00)\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{1,4}){1,5}")
_DATEISH = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d{1,2}:\d\d")

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


def _classify_number(text: str, raw: str, start: int, end: int, out: list[Finding]) -> bool:
    """Validate one digit-group candidate; append its finding and return True if it is one."""
    if raw[-1] == ")" and raw.count("(") < raw.count(")"):
        raw, end = raw[:-1], end - 1
    if raw[0] == "(" and raw.count("(") > raw.count(")"):
        raw, start = raw[1:], start + 1
    digits = raw.translate(_SEPARATORS)
    if not digits.isdigit():
        return False
    n = len(digits)
    first = raw[0]
    if n <= 12 and raw.count(".") == 3 and _IPV4_SHAPE.fullmatch(raw):
        octets = raw.split(".")
        if any((len(o) > 1 and o[0] == "0") or int(o) > 255 for o in octets):
            return False
        if _VERSION_BEFORE.search(text, max(0, start - 10), start):
            return False
        n_text = len(text)
        if end + 1 < n_text and text[end] == "/" and text[end + 1].isdigit():  # CIDR suffix
            e = end + 1
            while e < n_text and e < end + 3 and text[e].isdigit():
                e += 1
            end = e
        out.append(Finding("IP_ADDRESS", start, end, 0.95))
        return True
    if (
        12 <= n <= 19
        and first.isdigit()
        and "." not in raw
        and "(" not in raw
        and _CARD_SHAPE.fullmatch(raw)
        and _luhn_ok(digits)
        and _card_network_ok(digits)
    ):
        out.append(Finding("CREDIT_CARD", start, end, 1.0))
        return True
    if n == 9 and first.isdigit():
        ssn = _SSN_SHAPE.fullmatch(raw)
        if ssn:
            sep = ssn.group(2)
            if _ssn_ok(ssn.group(1), ssn.group(3), ssn.group(4)) and (
                sep or _SSN_CONTEXT.search(text, max(0, start - 40), start)
            ):
                out.append(Finding("US_SSN", start, end, 0.95 if sep else 0.8))
                return True
            return False
    if 8 <= n <= 15 and _PHONE_SHAPE.fullmatch(raw) and not _DATEISH.match(raw):
        if _VERSION_BEFORE.search(text, max(0, start - 10), start):
            return False
        has_sep = not raw.isdigit()
        if (has_sep or _PHONE_CONTEXT.search(text, max(0, start - 30), start)) and _phone_ok(digits, raw):
            out.append(Finding("PHONE_NUMBER", start, end, 0.85 if has_sep else 0.6))
            return True
    return False


def _scan_numeric(text: str, out: list[Finding]) -> None:
    """Cards, SSNs, phone numbers and IPv4 addresses: one pass over runs of digits and separators."""
    pos = 0
    n_text = len(text)
    search = _NUMERIC.search
    while True:
        m = search(text, pos)
        if m is None:
            return
        start, end = m.span()
        pos = end
        prev = text[start - 1] if start else " "
        if prev in _NUMERIC_BAD_BEFORE:
            # Started inside a token: skip to that token's end and try again from there.
            pos = start + 1
            while pos < n_text and (text[pos].isalnum() or text[pos] in "_.-"):
                pos += 1
            continue
        raw = m.group()
        nxt = text[end] if end < n_text else " "
        if nxt.isalnum() or nxt in "_@" or (nxt in ".:/-" and end + 1 < n_text and text[end + 1].isalnum()):
            if raw.count(".") == 3 and nxt in ":/" and _IPV4_SHAPE.fullmatch(raw):
                _classify_number(text, raw, start, end, out)  # an address with a port or a CIDR suffix
                continue
            # Ran into a longer token (a version, a time, a path): not a number of interest.
            pos = end + 1
            while pos < n_text and not text[pos].isspace():
                pos += 1
            continue
        if not _classify_number(text, raw, start, end, out) and " " in raw:
            # Several numbers side by side ("10.0.0.1 10.0.0.2"): try each space-separated piece.
            offset = start
            for piece in raw.split(" "):
                if len(piece) >= 7:
                    _classify_number(text, piece, offset, offset + len(piece), out)
                offset += len(piece) + 1


def _scan_ipv6(text: str, out: list[Finding]) -> None:
    n_text = len(text)
    covered = -1
    i = text.find(":")
    while i != -1:
        if (
            i > covered
            and 0 < i < n_text - 1
            and (text[i - 1] in _HEX_COLON or text[i + 1] in _HEX_COLON)
            and text[i + 1] in _HEX_COLON
        ):
            s = i
            while s > 0 and text[s - 1] in _HEX_COLON and i - s < 40:
                s -= 1
            m = _HEX_COLON_RUN.match(text, s)
            end = m.end() if m else i + 1
            covered = end
            cand = text[s:end]
            if (
                cand.count(":") >= 2
                and (s == 0 or not (text[s - 1].isalnum() or text[s - 1] in "_."))
                and (end >= n_text or not (text[end].isalnum() or text[end] == "_"))
            ):
                if cand.endswith(":") and not cand.endswith("::"):
                    cand = cand.rstrip(":")
                groups = sum(1 for g in cand.split(":") if g)
                if (groups >= 3 and ("::" in cand or cand.count(":") == 7)) or cand == "::1":
                    try:
                        ipaddress.IPv6Address(cand)
                    except ValueError:
                        pass
                    else:
                        out.append(Finding("IP_ADDRESS", s, s + len(cand), 0.95))
        i = text.find(":", i + 1)


def _scan_urls(text: str, out: list[Finding]) -> None:
    i = text.find("://")
    while i != -1:
        s = i
        while s > 0 and (text[s - 1].isalpha()) and i - s < 6:
            s -= 1
        if text[s:i].lower() in _SCHEMES and (s == 0 or not text[s - 1].isalnum()):
            m = _URL_REST.match(text, i + 3)
            if m:
                end = m.end()
                while end > i + 3 and text[end - 1] in _URL_TRAIL:
                    end -= 1
                if end > i + 4:
                    out.append(Finding("URL", s, end, 0.8))
                i = text.find("://", end)
                continue
        i = text.find("://", i + 3)
    low_www = text.find("www.") if "www." in text else text.lower().find("www.")
    while low_www != -1:
        s = low_www
        if s == 0 or not (text[s - 1].isalnum() or text[s - 1] in "/.@"):
            m = _URL_REST.match(text, s)
            end = m.end() if m else s
            while end > s and text[end - 1] in _URL_TRAIL:
                end -= 1
            if end > s + 6 and "." in text[s + 4 : end]:
                out.append(Finding("URL", s, end, 0.7))
        low_www = text.find("www.", s + 4)


def _scan_emails(text: str, out: list[Finding]) -> None:
    at = text.find("@")
    last_end = 0
    while at != -1:
        if at >= last_end:
            m = _EMAIL.search(text, max(last_end, at - 64), at + 256)
            if m and m.start() < at < m.end():
                out.append(Finding("EMAIL_ADDRESS", m.start(), m.end(), 0.95))
                last_end = m.end()
        at = text.find("@", at + 1)


def _scan_ibans(text: str, out: list[Finding]) -> None:
    n_text = len(text)
    for m in _IBAN.finditer(text):
        start, end = m.span()
        if start and text[start - 1].isalnum():
            continue
        if end < n_text and text[end].isalnum():
            continue
        if _iban_ok(m.group().replace(" ", "")):
            out.append(Finding("IBAN_CODE", start, end, 1.0))


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
    chosen: list[Finding] = []
    for f in ranked:
        if all(f.end <= k.start or f.start >= k.end for k in chosen):
            chosen.append(f)
    chosen.sort(key=lambda f: f.start)
    return chosen


_DIGITS = "0123456789"
_ENTITY_SET = frozenset(ENTITY_TYPES)


def scan(text: str, entities: Iterable[str] | None = None) -> list[Finding]:
    """Find PII and secrets in ``text``; findings are sorted by position and never overlap.

    Args:
        text: any string (a message, tool arguments, a tool result).
        entities: restrict to these entity types (default: all of :data:`ENTITY_TYPES`).

    Returns:
        One :class:`Finding` per entity; ``text[f.start:f.end]`` is the matched value.

    Raises:
        ConfigError: ``text`` is not a str, or an unknown entity type was asked for.

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
    out: list[Finding] = []
    if len(text) < 6:
        return out
    _scan_secrets(text, out)
    if "@" in text:
        _scan_emails(text, out)
    if "://" in text or "www." in text or "WWW." in text:
        _scan_urls(text, out)
    if any(d in text for d in _DIGITS):
        _scan_numeric(text, out)
        _scan_ibans(text, out)
    if "::" in text or text.count(":") >= 4:
        _scan_ipv6(text, out)
    found = _resolve(out)
    if wanted is not None:
        found = [f for f in found if f.entity_type in wanted]
    return found


@runtime_checkable
class Scanner(Protocol):
    """Anything that maps text to findings; :func:`scan` is the default."""

    def __call__(self, text: str) -> list[Finding]: ...
