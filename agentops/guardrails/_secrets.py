"""Secret detection: provider token formats, keyword assignments, passwords in URLs, bearer tokens."""

from __future__ import annotations

import re

from agentops.guardrails._types import Finding
from agentops.guardrails._validators import _is_placeholder, _secret_value_ok

_SECRET_TOKENS = re.compile(
    r"(?P<aws>(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![0-9A-Za-z]))"
    r"|(?P<github>gh[pousr]_[A-Za-z0-9]{36,255}(?!\w)|github_pat_[A-Za-z0-9_]{60,255})"
    r"|(?P<slack>xox[abposr]-[A-Za-z0-9-]{10,250}|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,})"
    r"|(?P<stripe>[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}(?!\w))"
    r"|(?P<openai>sk-(?:proj-|svcacct-|admin-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}(?![\w-]))"
    r"|(?P<google>AIza[0-9A-Za-z_-]{35}(?![\w-]))"
    r"|(?P<jwt>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{10,})"
    r"|(?P<pem>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s]*))"
)
# Secret-ish key names, searched in the lower-cased text; the assignment itself is checked after.
_BEARER_VALUE = re.compile(r"\s+([A-Za-z0-9._~+/=-]{16,})")
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<value>[^\s/@]{3,})@", re.IGNORECASE)

_SOFT_KINDS = ("openai", "stripe", "github", "slack")


_AWS_PREFIX = re.compile(r"A(?:KI|SI|BI|CC)A[0-9A-Z]")
# (gate character checked with memchr, literal, offset from the literal back to the token start)
_SECRET_LITERALS: tuple[tuple[str, str, int], ...] = (
    ("_", "gh", 0),
    ("_", "k_live_", 1),
    ("_", "k_test_", 1),
    ("-", "sk-", 0),
    ("-", "xox", 0),
    ("-", "-----BEGIN ", 0),
    ("J", "eyJ", 0),
    ("z", "AIza", 0),
    ("/", "https://hooks.slack.com", 0),
)
# A secret-looking key name just before an assignment operator ("db_password = ", "API_KEY: ").
_KEY_BEFORE = re.compile(
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|api_?key|apikey|key|token|credentials?)[\w.-]{0,30}?[\"']?\s*$"
)
_KEY_HINTS = ("pass", "pwd", "secret", "key", "token", "credential")
_VALUE_AFTER = re.compile(r"=?>?\s*(?:(?:bearer|token|basic)\s+)?([\"']?)([^\s\"'`,;]{6,200})\1", re.I)
_IS_VALUE = re.compile(r"pass(?:word|wd|phrase)? is ([\"']?)([^\s\"'`,;]{6,200})\1")


def _secret_token_at(text: str, start: int, seen: set[int], out: list[Finding]) -> None:
    if start < 0 or start in seen:
        return
    if start and (text[start - 1].isalnum() or text[start - 1] == "_"):
        return
    m = _SECRET_TOKENS.match(text, start)
    if m is None:
        return
    kind = m.lastgroup
    if kind in _SOFT_KINDS:
        body = m.group()
        body = body.rsplit("_", 1)[-1] if kind in ("stripe", "github") else body
        if not _secret_value_ok(body, strict=False):
            return
    seen.add(start)
    out.append(Finding("SECRET", start, m.end(), 0.99 if kind in ("pem", "aws", "github") else 0.95))


def _assigned_secret(text: str, low: str, op: int, out: list[Finding]) -> None:
    """Check the assignment at operator position ``op`` (``=`` or ``:``) for a secret value."""
    j = op
    while j > 0 and low[j - 1] in " \t\"'":
        j -= 1
    lo = max(0, op - 48, low.rfind(" ", 0, j) + 1)
    token = low[lo:j]
    if not token or not any(key in token for key in _KEY_HINTS):
        return
    k = _KEY_BEFORE.search(low, lo, op)
    if k is None:
        return
    t = _VALUE_AFTER.match(text, op + 1)
    if t is None:
        return
    key = k.group()
    strict = not (key.startswith("pass") or key.startswith("pwd"))
    if _secret_value_ok(t.group(2), strict=strict):
        out.append(Finding("SECRET", t.start(2), t.end(2), 0.85))


def _scan_secrets(text: str, out: list[Finding]) -> None:
    seen: set[int] = set()
    for gate, literal, back in _SECRET_LITERALS:
        if gate not in text:
            continue
        idx = text.find(literal)
        while idx != -1:
            _secret_token_at(text, idx - back, seen, out)
            idx = text.find(literal, idx + 1)
    if "A" in text:
        for m in _AWS_PREFIX.finditer(text):
            _secret_token_at(text, m.start(), seen, out)
    low = None
    for op_char in "=:":
        op = text.find(op_char)
        while op != -1:
            if low is None:
                low = text.lower()
                if len(low) != len(text):  # a few Unicode characters change length when lower-cased
                    low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
            if op_char == ":" and text.startswith("//", op + 1):
                if "@" in text:
                    u = _URL_PASSWORD.match(text, max(0, text.rfind(" ", 0, op) + 1))
                    if u and not _is_placeholder(u.group("value")):
                        out.append(Finding("SECRET", u.start("value"), u.end("value"), 0.9))
            else:
                _assigned_secret(text, low, op, out)
            op = text.find(op_char, op + 1)
    if "ass" in text or "ASS" in text:
        low = low if low is not None else text.lower()
        if len(low) == len(text):
            for m in _IS_VALUE.finditer(low):
                value = text[m.start(2) : m.end(2)]
                if _secret_value_ok(value, strict=False):
                    out.append(Finding("SECRET", m.start(2), m.end(2), 0.85))
    if "earer " in text or "EARER " in text:
        low = low if low is not None else text.lower()
        idx = low.find("bearer ")
        while idx != -1:
            m = _BEARER_VALUE.match(text, idx + 6)
            if m and _secret_value_ok(m.group(1), strict=True):
                out.append(Finding("SECRET", m.start(1), m.end(1), 0.9))
            idx = low.find("bearer ", idx + 7)
