"""Addresses: e-mail (internationalised domains included), URLs and IPv6 in every RFC 4291/5952 text form.

E-mail candidates are anchored at each ``@``: the local part is read backwards (at most 64 characters)
and the domain forwards with a bounded pattern, so a run of ``@`` costs one step each. Shapes that
look like e-mail but are not are skipped: ``user:password@host`` (a credential), ``name@2x.png``
(an image name), ``git@github.com:org/repo`` (an SSH remote), ``pkg@1.2.3`` (a version). IPv6
candidates are runs of hex digits, colons and dots around each ``:``; the standard library's
:mod:`ipaddress` decides (embedded IPv4, ``::``), and zone suffixes (``%eth0``) and prefixes
(``/64``) extend the span.
"""

from __future__ import annotations

import ipaddress
import re

from agentops.guardrails._types import Finding

_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}(?P<tld>[^\W\d_]{2,24}|xn--[a-z0-9-]{1,59})(?![\w-])")
_NOT_TLD = frozenset(
    "png jpg jpeg gif svg webp bmp ico css js mjs ts py json yaml yml md txt lock toml html htm".split()  # noqa: SIM905
)
_RETINA = re.compile(r"\d{1,2}(?:\.\d)?x\.")


def _local_start(text: str, at: int) -> int:
    s = at
    while s > 0 and at - s < 64 and (text[s - 1].isalnum() or text[s - 1] in "._%+-'"):
        s -= 1
    while s < at and not text[s].isalnum():
        s += 1
    return s


def _in_url(text: str, pos: int) -> bool:
    """True when ``pos`` is inside a ``scheme://`` token (the userinfo part of a URL)."""
    i = text.rfind("://", max(0, pos - 256), pos)
    return i != -1 and not any(c.isspace() for c in text[i:pos])


def scan_emails(text: str, out: list[Finding]) -> None:
    n = len(text)
    at = text.find("@")
    while at != -1:
        s = _local_start(text, at)
        m = _DOMAIN.match(text, at + 1) if s < at and at + 1 < n else None
        if m is not None:
            prev = text[s - 1] if s else " "
            end = m.end()
            after = text[end : end + 2]
            if (
                prev not in ":/"  # user:password@host, scheme://user@host
                and not _in_url(text, s)
                and m.group("tld").lower() not in _NOT_TLD
                and not _RETINA.match(text, at + 1)
                and not (after[:1] == ":" and after[1:2].strip() and not after[1:2].isdigit())  # git@host:org
            ):
                out.append(Finding("EMAIL_ADDRESS", s, end, 0.95))
                at = text.find("@", end)
                continue
        at = text.find("@", at + 1)


_URL_REST = re.compile(r"[^\s<>\"'`]{1,2048}")
_URL_TRAIL = ".,;:!?]}'\""
_SCHEMES = ("http", "https", "ftp", "ws", "wss")


def _url_end(text: str, start: int, end: int) -> int:
    while end > start:
        c = text[end - 1]
        if c in _URL_TRAIL or (c == ")" and text.count("(", start, end) < text.count(")", start, end)):
            end -= 1
        else:
            break
    return end


def scan_urls(text: str, out: list[Finding]) -> None:
    i = text.find("://")
    while i != -1:
        s = i
        while s > 0 and text[s - 1].isalpha() and i - s < 6:
            s -= 1
        if text[s:i].lower() in _SCHEMES and (s == 0 or not text[s - 1].isalnum()):
            m = _URL_REST.match(text, i + 3)
            if m:
                end = _url_end(text, i + 3, m.end())
                if end > i + 4:
                    out.append(Finding("URL", s, end, 0.8))
                i = text.find("://", max(end, i + 3))
                continue
        i = text.find("://", i + 3)
    low = text if "www." in text else text.lower()
    w = low.find("www.")
    while w != -1:
        nxt = w + 4
        if w == 0 or not (text[w - 1].isalnum() or text[w - 1] in "/.@"):
            m = _URL_REST.match(text, w)
            end = _url_end(text, w, m.end()) if m else w
            if end > w + 6 and "." in text[w + 4 : end]:
                out.append(Finding("URL", w, end, 0.7))
                nxt = max(end, nxt)
        w = low.find("www.", nxt)


_V6_RUN = re.compile(r"[0-9A-Fa-f:.]{1,64}")
_HEX = frozenset("0123456789abcdefABCDEF")
_V6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_ZONE = re.compile(r"%[A-Za-z0-9_.-]{1,16}")
_PREFIX = re.compile(r"/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])(?![0-9])")


def _v6_plausible(cand: str) -> bool:
    groups = [g for g in cand.split(":") if g]
    n = len(groups) + (1 if groups and "." in groups[-1] else 0)
    if n >= 3:
        return "::" in cand or cand.count(":") >= 6
    # Short compressed forms (fe80::1, 2001:db8::) need a full-width group: "a::b" is more likely code.
    return cand == "::1" or ("::" in cand and n == 2 and any(len(g) >= 3 for g in groups))


def scan_ipv6(text: str, out: list[Finding]) -> None:
    n = len(text)
    covered = -1
    i = text.find(":")
    while i != -1:
        if i + 1 < n and text[i + 1] not in _V6_CHARS:
            # The run ends right after this colon, holding no other: not an address ("Card: 4111").
            covered = max(covered, i + 1)
            i = text.find(":", i + 1)
            continue
        if i >= covered:
            s = i
            while s > 0 and text[s - 1] in _HEX and i - s < 4:
                s -= 1
            end = _V6_RUN.match(text, s).end()
            covered = end
            while end > s and text[end - 1] == ".":
                end -= 1
            cand = text[s:end]
            if cand.startswith(":") and not cand.startswith("::"):
                cand, s = cand[1:], s + 1
            if s > 0 and (text[s - 1].isalnum() or text[s - 1] in "_."):
                i = text.find(":", covered)
                continue
            if cand.endswith(":") and not cand.endswith("::"):
                cand = cand.rstrip(":")
            end = s + len(cand)
            if end < n and (text[end].isalnum() or text[end] == "_"):
                i = text.find(":", covered)
                continue
            if _v6_plausible(cand) or ("::" in cand and _PREFIX.match(text, end)):
                try:
                    ipaddress.IPv6Address(cand)
                except ValueError:
                    pass
                else:
                    z = _ZONE.match(text, end) or _PREFIX.match(text, end)
                    out.append(Finding("IP_ADDRESS", s, z.end() if z else end, 0.95))
            i = text.find(":", covered)
            continue
        i = text.find(":", i + 1)
