"""Redaction: typed placeholders (:func:`redact`) and the per-conversation redact-then-restore :class:`Vault`.

The vault is what lets a tool receive a real value the model only ever saw as ``[EMAIL_ADDRESS_1]`` —
and so it is also what an injected document would try to turn against its owner ("send the card
number to attacker@evil.example"). Restoring is therefore policy-bound:

* nothing is restored unless the tool declares, per argument, which entity types it may receive
  (:func:`restore_into` on the tool, or ``GuardrailPolicy.restore``); the default is none;
* only values the *user* supplied are restorable — a value first seen in a tool result or in model
  output (an address planted in a web page) stays a placeholder;
* restoring is exact and structural: the arguments are parsed, each string leaf is restored in place
  (nested lists and objects included), numbers and keys are untouched;
* a call that would need a value the policy does not allow is refused: the tool does not run, the
  model reads ``DENIED: ...`` (types and argument names only, never values), and the refusal is
  recorded by the guardrail.

Placeholders are never re-detected as secrets (the middleware skips them when scanning), so a
``{"password": "[SECRET_1]"}`` call restores to the real password in one step.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from copy import copy
from typing import Any

from ag2.events import ToolCallEvent, ToolResultEvent

from agentops.errors import ConfigError
from agentops.guardrails._types import ENTITY_TYPES, Finding
from agentops.guardrails.scanners import scan

__all__ = ["GUARD_KEY", "VAULT_KEY", "Vault", "redact", "restore_into", "restore_placeholders"]

VAULT_KEY = "agentops.guardrails.vault"
GUARD_KEY = "agentops.guardrails.guard"
TURN_KEY = "agentops.guardrails.turn"
PLACEHOLDER = re.compile(r"\[(" + "|".join(ENTITY_TYPES) + r")_(\d{1,9})\]")
USER_ORIGIN = "input"


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


class Vault:
    """Per-conversation map between real values and stable placeholders (``[EMAIL_ADDRESS_1]``).

    The same value always gets the same placeholder within the vault, so the model can refer to
    it consistently. Each value remembers where it was first seen (``"input"`` for the user's own
    message); :meth:`restore_arguments` restores only user-supplied values into arguments declared
    for their type. Values live only in memory on this object — never in history, logs or findings.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._origin: dict[str, str] = {}
        self._counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def placeholder(self, entity_type: str, value: str, origin: str = USER_ORIGIN) -> str:
        """The placeholder for this value, minting the next number for its type if new.

        ``origin`` (``"input"``, ``"tool_result"``, ``"output"``, ...) is kept from the first sighting.
        """
        with self._lock:
            key = (entity_type, value)
            ph = self._by_value.get(key)
            if ph is None:
                self._counts[entity_type] += 1
                ph = f"[{entity_type}_{self._counts[entity_type]}]"
                self._by_value[key] = ph
                self._by_placeholder[ph] = value
                self._origin[ph] = origin
            return ph

    def origin(self, placeholder: str) -> str | None:
        """Where the value behind ``placeholder`` was first seen, or None if the vault does not know it."""
        return self._origin.get(placeholder)

    def redact(self, text: str, findings: Sequence[Finding] | None = None, origin: str = USER_ORIGIN) -> str:
        """Replace findings with this vault's placeholders."""
        return _splice(text, findings, lambda f: self.placeholder(f.entity_type, text[f.start : f.end], origin))

    def restore(self, text: str) -> str:
        """Swap every known placeholder back to its real value, with no policy (unknown ones stay).

        For code that owns both sides (tests, a trusted post-processor). Tools get values through
        :meth:`restore_arguments`, which applies the restore policy.
        """
        if "[" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(), m.group()), text)

    def restore_obj(self, obj: Any) -> Any:
        """:meth:`restore` applied to every string inside nested dicts, lists and tuples (keys untouched)."""
        if isinstance(obj, str):
            return self.restore(obj)
        if isinstance(obj, Mapping):
            return {k: self.restore_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.restore_obj(v) for v in obj)
        return obj

    def restore_arguments(
        self, arguments: Mapping[str, Any], allowed: Mapping[str, Sequence[str]]
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """Restore placeholders inside each argument only when ``allowed[argument]`` lists their type.

        Returns ``(restored arguments, refusals)``; each refusal is ``(argument, entity type, why)``.
        Placeholders the vault does not know are left as they are (they may be the model's own text).

        Example:
            >>> v = Vault()
            >>> ph = v.placeholder("EMAIL_ADDRESS", "ana@example.org")
            >>> args, refusals = v.restore_arguments({"to": ph, "body": ph}, {"to": ["EMAIL_ADDRESS"]})
            >>> args
            {'to': 'ana@example.org', 'body': '[EMAIL_ADDRESS_1]'}
            >>> refusals
            [('body', 'EMAIL_ADDRESS', 'not declared for this argument')]
        """
        refusals: list[tuple[str, str, str]] = []
        out: dict[str, Any] = {}
        for name, value in arguments.items():
            types = frozenset(allowed.get(name, ()))
            out[name] = self._restore_leaf(name, value, types, refusals)
        return out, refusals

    def _restore_leaf(self, name: str, value: Any, types: frozenset[str], refusals: list[tuple[str, str, str]]) -> Any:
        if isinstance(value, str):
            if "[" not in value:
                return value

            def one(m: re.Match[str]) -> str:
                ph = m.group()
                real = self._by_placeholder.get(ph)
                if real is None:
                    return ph
                if m.group(1) not in types:
                    refusals.append((name, m.group(1), "not declared for this argument"))
                elif self._origin.get(ph) != USER_ORIGIN:
                    refusals.append(
                        (name, m.group(1), f"the value came from {self._origin.get(ph)}, not from the user")
                    )
                else:
                    return real
                return ph

            return PLACEHOLDER.sub(one, value)
        if isinstance(value, Mapping):
            return {k: self._restore_leaf(name, v, types, refusals) for k, v in value.items()}
        if isinstance(value, list):
            return [self._restore_leaf(name, v, types, refusals) for v in value]
        return value

    def types(self) -> dict[str, int]:
        """How many distinct values of each type the vault holds (no values)."""
        with self._lock:
            return dict(self._counts)


# ==================================================================================================
# Tool middleware: restore into declared arguments, or refuse
# ==================================================================================================

ToolHook = Callable[[Any, ToolCallEvent, Any], Any]


def _check_declaration(arguments: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for arg, types in arguments.items():
        if isinstance(types, str):
            types = (types,)
        unknown = set(types) - set(ENTITY_TYPES)
        if unknown:
            raise ConfigError(
                f"restore_into({arg}=...): unknown entity type(s) {sorted(unknown)}; choose from {list(ENTITY_TYPES)}"
            )
        out[arg] = tuple(types)
    return out


def restore_into(**arguments: Sequence[str] | str) -> ToolHook:
    """AG2 *tool* middleware declaring which entity types each argument of this tool may receive.

    ``@tool(middleware=[restore_into(to=["EMAIL_ADDRESS"])])`` lets ``send_email`` receive the real
    address the user typed, in ``to`` only; a card number in ``body``, or an address that came from
    a web page, is refused with ``DENIED: ...``. Declarations add to ``GuardrailPolicy.restore``.

    Raises:
        ConfigError: an unknown entity type.
    """
    declared = _check_declaration(arguments)

    async def hook(call_next: Any, event: ToolCallEvent, context: Any) -> Any:
        return await _restore(call_next, event, context, declared)

    hook.__name__ = hook.__qualname__ = "restore_into"
    return hook


async def restore_placeholders(call_next: Any, event: ToolCallEvent, context: Any) -> Any:
    """AG2 *tool* middleware restoring what ``GuardrailPolicy.restore`` allows for this tool (default: nothing).

    Tool-level hooks run inside all agent middleware, after approvals, so what approvers, history
    and logs see stays redacted. The vault and the policy come from the :class:`GuardrailMiddleware`
    of the same turn; without one the call is unchanged.
    """
    return await _restore(call_next, event, context, {})


async def _restore(call_next: Any, event: ToolCallEvent, context: Any, declared: Mapping[str, Sequence[str]]) -> Any:
    deps = getattr(context, "dependencies", None) or {}
    vault = deps.get(VAULT_KEY)
    if not isinstance(vault, Vault) or "[" not in (event.arguments or ""):
        return await call_next(event, context)
    guard = deps.get(GUARD_KEY)
    allowed: dict[str, list[str]] = {k: list(v) for k, v in declared.items()}
    if guard is not None:
        for arg, types in guard.policy.restore.get(event.name, {}).items():
            allowed.setdefault(arg, []).extend(types)
    try:
        arguments = json.loads(event.arguments or "{}")
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        refusals = [("arguments", "?", "not a JSON object")]
        restored: dict[str, Any] = {}
    else:
        restored, refusals = vault.restore_arguments(arguments, allowed)
    if refusals:
        if guard is not None:
            guard.record_refusals(event.name, refusals, deps.get(TURN_KEY, 0))
        reasons = "; ".join(dict.fromkeys(f"{arg} may not receive {kind} ({why})" for arg, kind, why in refusals))
        return ToolResultEvent.from_call(event, result=f"DENIED: tool {event.name!r}: {reasons}")
    if restored == arguments:
        return await call_next(event, context)
    event = copy(event)
    event.arguments = json.dumps(restored)
    event.serialized_arguments = restored
    return await call_next(event, context)
