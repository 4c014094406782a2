"""Redaction: typed placeholders (:func:`redact`) and the per-conversation redact-then-restore :class:`Vault`."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from copy import copy
from typing import Any

from ag2.events import ToolCallEvent

from agentops.errors import ConfigError
from agentops.guardrails._types import ENTITY_TYPES, Finding
from agentops.guardrails.scanners import scan

__all__ = ["VAULT_KEY", "Vault", "redact", "restore_placeholders"]


def redact(text: str, findings: Sequence[Finding] | None = None) -> str:
    """Replace every PII/secret finding in ``text`` with a typed placeholder such as ``[EMAIL_ADDRESS]``.

    The plain, stateless form for logs and traces; use a :class:`Vault` when a tool must later
    receive the real value. ``findings`` defaults to :func:`scan` of the text.

    Example:
        >>> redact("key=AKIAIOSFODNN7REALKEY mail a@b.io")
        'key=[SECRET] mail [EMAIL_ADDRESS]'
    """
    if not isinstance(text, str):
        raise ConfigError(f"redact() needs a str, got {type(text).__name__}")
    return _splice(text, findings, lambda f: f"[{f.entity_type}]")


def _splice(text: str, findings: Sequence[Finding] | None, placeholder: Callable[[Finding], str]) -> str:
    """Replace each finding (default: :func:`scan` of the text) by ``placeholder(finding)``; overlaps skipped."""
    found = scan(text) if findings is None else sorted(findings, key=lambda f: f.start)
    if not found:
        return text
    parts: list[str] = []
    pos = 0
    for f in found:
        if f.start < pos:
            continue
        parts.append(text[pos : f.start])
        parts.append(placeholder(f))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


_PLACEHOLDER = re.compile(r"\[(" + "|".join(ENTITY_TYPES) + r")_(\d+)\]")
VAULT_KEY = "agentops.guardrails.vault"


class Vault:
    """Per-conversation map between real values and stable placeholders (``[EMAIL_ADDRESS_1]``).

    The same value always gets the same placeholder within the vault, so the model can refer to
    it consistently; :meth:`restore` swaps placeholders back for a trusted tool. Values live only in
    memory on this object — never in history, logs or findings. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def placeholder(self, entity_type: str, value: str) -> str:
        """The placeholder for this value, minting the next number for its type if new."""
        with self._lock:
            key = (entity_type, value)
            ph = self._by_value.get(key)
            if ph is None:
                self._counts[entity_type] += 1
                ph = f"[{entity_type}_{self._counts[entity_type]}]"
                self._by_value[key] = ph
                self._by_placeholder[ph] = value
            return ph

    def redact(self, text: str, findings: Sequence[Finding] | None = None) -> str:
        """Replace findings with this vault's placeholders."""
        return _splice(text, findings, lambda f: self.placeholder(f.entity_type, text[f.start : f.end]))

    def restore(self, text: str) -> str:
        """Swap known placeholders back to their real values (unknown ones stay as they are)."""
        if "[" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(), m.group()), text)

    def restore_obj(self, obj: Any) -> Any:
        """:meth:`restore` applied to every string inside nested dicts, lists and tuples."""
        if isinstance(obj, str):
            return self.restore(obj)
        if isinstance(obj, Mapping):
            return {k: self.restore_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.restore_obj(v) for v in obj)
        return obj

    def types(self) -> dict[str, int]:
        """How many distinct values of each type the vault holds (no values)."""
        with self._lock:
            return dict(self._counts)


async def restore_placeholders(call_next: Any, event: ToolCallEvent, context: Any) -> Any:
    """AG2 *tool* middleware: give this tool the real values behind placeholders in its arguments.

    Attach it only to tools trusted with personal data (``@tool(middleware=[restore_placeholders])``,
    or ``ToolRegistry.register(..., receives_pii=True)``). Tool-level hooks run inside all agent
    middleware, after approvals, so what approvers, history and logs see stays redacted. The vault
    comes from the :class:`GuardrailMiddleware` of the same turn; without one the call is unchanged.
    """
    vault = getattr(context, "dependencies", {}).get(VAULT_KEY)
    if isinstance(vault, Vault) and "[" in (event.arguments or ""):
        restored = vault.restore_obj(json.loads(event.arguments or "{}"))
        event = copy(event)
        event.arguments = json.dumps(restored)
        event._serialized_arguments = None
    return await call_next(event, context)
