"""Redaction for everything telemetry writes: free text is redacted, the telemetry's vocabulary is not.

There is one catalogue of secret and PII formats, :mod:`agentops.guardrails`; this module only decides
*what* goes through it. Free text — messages, errors, tool arguments, captured content — is redacted
with :func:`agentops.guardrails.redact`, plus a second look at backslash-escaped text (JSON inside a
span attribute, a ``repr``), where ``password=\\"…\\"`` hides its quotes from the assignment rule.
Names that are the telemetry's own vocabulary — agents, models, tools, entity types, event kinds,
outcomes — are never rewritten: they are kept whole, or dropped whole as :data:`REDACTED_NAME` if the
value is itself a secret. Values of any type (objects, sets, dataclasses) become JSON-ready data first,
so nothing reaches a log line by ``str()`` behind redaction's back.

Hot path: strings found clean are remembered (a set lookup is the whole cost of checking them again),
and short strings are memoised; both caches are bounded.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import functools
import re
from collections.abc import Mapping
from typing import Any

from agentops import guardrails as _guardrails
from agentops.listeners import PAYLOAD_KEYS

__all__ = ["REDACTED_NAME", "redact"]

#: What a vocabulary value (a name, kind or outcome) becomes when it is itself a secret or PII.
REDACTED_NAME = "[REDACTED]"

# One backslash escape: \" \' \\ \/ and the JSON whitespace escapes.
_ESCAPE = re.compile(r"\\([\"'\\/bfnrt])")
_UNESCAPED = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_MAX_UNESCAPE_PASSES = 3  # JSON inside JSON inside JSON; deeper nesting is not seen in practice


def _unescaped_view(text: str) -> tuple[str, list[int]] | None:
    """``text`` with one level of backslash escapes resolved, and where each view index came from.

    ``origin[i]`` is the index in ``text`` of view character ``i``; ``origin[len(view)]`` is
    ``len(text)``. ``None`` when ``text`` holds no escape.
    """
    parts: list[str] = []
    origin: list[int] = []
    pos = 0
    for m in _ESCAPE.finditer(text):
        start = m.start()
        parts.append(text[pos:start])
        origin.extend(range(pos, start))
        ch = m.group(1)
        parts.append(_UNESCAPED.get(ch, ch))
        origin.append(start)
        pos = m.end()
    if not parts:
        return None
    parts.append(text[pos:])
    origin.extend(range(pos, len(text) + 1))
    return "".join(parts), origin


def _redact_escaped(text: str) -> str:
    """Redact what the scanner finds in the unescaped views of ``text``, splicing into ``text`` itself.

    Each pass resolves one more level of escapes (JSON inside JSON), keeping the map back to ``text``.
    """
    plain, origin = text, list(range(len(text) + 1))
    found: list[tuple[int, int, str]] = []
    for _ in range(_MAX_UNESCAPE_PASSES):
        view = _unescaped_view(plain)
        if view is None:
            break
        plain, step = view
        origin = [origin[i] for i in step]
        found += [(origin[f.start], origin[f.end], f.entity_type) for f in _guardrails.scan(plain)]
    if not found:
        return text
    parts: list[str] = []
    pos = 0
    for start, end, entity in sorted(found):
        if start < pos:
            continue
        parts += (text[pos:start], f"[{entity}]")
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def redact(text: Any) -> str:
    """Replace secrets and PII in free text with the guardrails' typed placeholders.

    The text goes through :func:`agentops.guardrails.redact` (emails, phone numbers, Luhn-checked
    cards, IBANs, SSNs, IP addresses, URLs, and secrets found by format, assignment and entropy).
    Backslash-escaped text — JSON inside a span attribute, where a quote is ``\\"`` — is also read
    with its escapes resolved, so ``{"m": "password=\\"…\\""}`` loses the password too.
    Placeholders are ``[SECRET]``, ``[EMAIL_ADDRESS]``, ``[CREDIT_CARD]``, ...; none is ever matched
    again, so ``redact`` is idempotent. Non-strings are converted with ``str`` first.

    Example:
        >>> redact("key=sk-abcdefghijklmnop1234 mail a@b.io")
        'key=[SECRET] mail [EMAIL_ADDRESS]'
        >>> redact('{"m": "password=\\\\"hunter2hunter2\\\\""}')
        '{"m": "password=\\\\"[SECRET]\\\\""}'
    """
    if text.__class__ is not str:
        text = str(text)
    if not text:
        return text
    out = _guardrails.redact(text)
    if "\\" in out:
        out = _redact_escaped(out)
    return out


# Strings that redaction leaves unchanged — names, event kinds, short messages — seen so far. Only
# strings of at most 256 characters are remembered, and the set is emptied when it grows too large.
_CLEAN: set[str] = set()
_CLEAN_MAX = 8192
_SHORT = 256


def _remember_clean(text: str) -> None:
    if len(_CLEAN) >= _CLEAN_MAX:
        _CLEAN.clear()
    _CLEAN.add(text)


@functools.lru_cache(maxsize=4096)
def _redact_short(text: str) -> str:
    out = redact(text)
    if out == text:
        _remember_clean(text)
    return out


def redact_text(value: str) -> str:
    """Redact free text, memoising short strings (event names, messages) so repeats are a lookup."""
    if value in _CLEAN:
        return value
    return _redact_short(value) if len(value) <= _SHORT else redact(value)


_SCANNED = 4096  # characters of an error message read at most; the rest is never shown


def error_message(exc: BaseException, limit: int = 200) -> str:
    r"""``"<Type>: <message>"`` for a span's status and exception event: redacted, one line, ≤ ``limit``.

    What OpenTelemetry's ``record_exception`` records, minus what must not leave the process whole: the
    message is redacted *before* it is cut (a secret cut in half would no longer be recognised), only
    its first 4,096 characters are read, and a word cut there is dropped, so no fragment of a secret
    past that point survives; newlines fold into spaces and a cut message ends with ``…``. No stack trace.

    >>> error_message(ValueError("bad key sk-abcdefghijklmnop1234\nsecond line"))
    'ValueError: bad key [SECRET] second line'
    """
    kind = type(exc).__name__
    try:
        text = str(exc)
    except Exception:  # an exception whose __str__ fails still has a type
        return kind
    if len(text) > _SCANNED:
        head = text[:_SCANNED]
        cut = max(head.rfind(c) for c in " \t\n\r")
        text = head[:cut] if cut > 0 else ""
    text = " ".join(redact(text).split())
    room = max(limit - len(kind) - 2, 1)
    if len(text) > room:
        text = text[: room - 1].rstrip() + "…"
    return f"{kind}: {text}" if text else kind


@functools.lru_cache(maxsize=4096)
def _check_name(value: str) -> str:
    if redact(value) != value:
        return REDACTED_NAME
    if len(value) <= _SHORT:
        _remember_clean(value)
    return value


def name(value: str) -> str:
    """A vocabulary value, verbatim — or :data:`REDACTED_NAME` if the whole value is a secret or PII.

    Never rewritten in part: ``"SECRET"`` (an entity type) stays ``"SECRET"``, while an API key passed
    where an agent name belongs disappears entirely.
    """
    return value if value in _CLEAN else _check_name(value)


def span_name(value: str) -> str:
    """A span name such as ``chat <model>`` or ``execute_tool <tool>``: each of the operation and its
    target is a :func:`name`, kept whole or dropped whole; names found unchanged are remembered."""
    if value in _CLEAN_SPAN_NAMES:
        return value
    operation, sep, target = value.partition(" ")
    clean = f"{name(operation)}{sep}{name(target)}" if sep else name(value)
    if clean == value and len(value) <= _SHORT:
        if len(_CLEAN_SPAN_NAMES) >= _CLEAN_MAX:
            _CLEAN_SPAN_NAMES.clear()
        _CLEAN_SPAN_NAMES.add(value)
    return clean


# Span names span_name() left unchanged (bounded like _CLEAN; emptied by forget()).
_CLEAN_SPAN_NAMES: set[str] = set()


def forget() -> None:
    """Empty the caches (after the guardrails catalogue changed, or in tests)."""
    _CLEAN.clear()
    _CLEAN_SPAN_NAMES.clear()
    _redact_short.cache_clear()
    _check_name.cache_clear()


#: The observability-hook payload keys that telemetry treats as names (``reason`` is free text).
HOOK_NAME_KEYS = frozenset(key for keys in PAYLOAD_KEYS.values() for key in keys if key != "reason")

# Keys whose string values are the telemetry's own vocabulary (span attributes, log fields, hook
# payloads): checked as names, never rewritten. Identifiers are passed through unchanged. Every other
# string — messages, errors, tool arguments, payload fields like ``reason``, attributes a caller adds —
# is free text and redacted.
_VOCABULARY_KEYS = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.agent.name",
        "gen_ai.tool.name",
        "gen_ai.tool.type",
        "gen_ai.response.finish_reasons",
        "ag2.span.type",
        "ag2.usage.kind",
        "ag2.usage.label",
        "agentops.workflow",
        "agentops.outcome",
        "error.type",
        "exception.type",
        "service.name",
        "event",
        "level",
        "logger",
        "agent",
        "model",
        "provider",
        "workflow",
        "outcome",
        "error_type",
        "finish_reason",
        "tool",
        "kind",
        "payload_from",
        *HOOK_NAME_KEYS,
    }
)
_IDENTIFIER_KEYS = frozenset({"trace_id", "span_id", "timestamp", "gen_ai.tool.call.id", "gen_ai.response.id"})

_IS_NAME, _IS_ID = 1, 2
# One lookup tells how a key's string values are treated (absent: free text).
_KEY_KIND: dict[str, int] = {**dict.fromkeys(_VOCABULARY_KEYS, _IS_NAME), **dict.fromkeys(_IDENTIFIER_KEYS, _IS_ID)}
SCALARS = frozenset({int, float, bool, type(None)})


def clean_str(key: str, value: str) -> str:
    """One string value, cleaned according to its key: a name is checked, free text redacted."""
    if value in _CLEAN:  # clean as free text means clean as a name too: the same check
        return value
    kind = _KEY_KIND.get(key)
    if kind is None:
        return _redact_short(value) if len(value) <= _SHORT else redact(value)
    return _check_name(value) if kind == _IS_NAME else value


def _jsonable(value: Any) -> Any:
    """A value that is not str, a number, a mapping or a sequence, as JSON-ready data (or its text)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(mode="json")
        except Exception:  # a broken model must not break logging
            return str(value)
    return str(value)


def clean_value(key: str, value: Any, _depth: int = 0) -> Any:
    """One log field, span attribute or payload value, cleaned according to its key; JSON-ready.

    Strings follow :func:`clean_str`; numbers, booleans and ``None`` pass; mappings, lists, tuples
    and sets are cleaned element by element (every string inside is content and redacted; set
    elements are sorted by their text); any other object becomes JSON-ready data or its ``str`` first,
    and is cleaned as that — so an object or a set can never carry a secret into a log line.
    """
    cls = value.__class__
    if cls is str:
        return clean_str(key, value)
    if cls in SCALARS:
        return value
    if isinstance(value, str):
        return clean_str(key, str(value))
    if isinstance(value, (int, float)) and not isinstance(value, enum.Enum):
        return value
    if _depth > 20:  # a self-referencing structure: its text is enough
        return redact(str(value))
    if isinstance(value, Mapping):  # nested structures are content: every string in them is redacted
        return {redact_text(str(k)): clean_value("", v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_value(key, v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return [clean_value(key, v, _depth + 1) for v in sorted(value, key=str)]
    return clean_value(key, _jsonable(value), _depth + 1)
