"""The AG2 middleware: :class:`GuardrailPolicy`, :class:`GuardrailRecord`, :class:`GuardrailMiddleware`."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from copy import copy
from dataclasses import dataclass
from typing import Any, Literal

from ag2.events import (
    BaseEvent,
    DataInput,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextInput,
    ToolCallEvent,
    ToolCallsEvent,
    ToolResultEvent,
)
from ag2.events.tool_events import ToolResult
from ag2.middleware import BaseMiddleware
from ag2.middleware.describe import MiddlewareDescription
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentops.errors import ConfigError
from agentops.guardrails._types import ENTITY_TYPES, Finding
from agentops.guardrails.injection import detect_injection
from agentops.guardrails.redaction import VAULT_KEY, Vault
from agentops.guardrails.scanners import scan
from agentops.guardrails.toxicity import LexiconToxicity
from agentops.listeners import GUARDRAIL_FINDING, Listener, notify

__all__ = ["Action", "GuardrailMiddleware", "GuardrailPolicy", "GuardrailRecord"]

log = logging.getLogger(__name__)

Action = Literal["redact", "block", "flag", "allow"]
_WHERE = ("input", "output", "tool_args", "tool_result")


class GuardrailPolicy(BaseModel):
    """What the guardrail does with each kind of finding, per agent.

    ``actions`` maps an entity type (or ``"INJECTION"``, ``"TOXICITY"``) to ``redact``, ``block``,
    ``flag`` (record only) or ``allow``; ``"*"`` is the default for entity types not listed.
    ``injection_threshold`` is the injection bar for inputs; tool results (indirect injection) have
    their own, stricter ``tool_result_injection_threshold`` (see :mod:`agentops.guardrails.classifier`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    actions: Mapping[str, str] = Field(
        default_factory=lambda: {"*": "redact", "INJECTION": "block", "TOXICITY": "flag"}
    )
    scan_input: bool = True
    scan_output: bool = True
    scan_tools: bool = True
    injection_threshold: float = Field(0.5, gt=0, le=1)
    tool_result_injection_threshold: float = Field(0.7, gt=0, le=1)
    check_tool_results_for_injection: bool = True
    toxicity: Any = Field(default_factory=LexiconToxicity, description="a ToxicityDetector")
    scanner: Any = Field(default=None, description="a Scanner; None means agentops.guardrails.scan")
    refusal: str = "I can't process that message: it was blocked by a safety policy ({reason})."

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'policy'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid GuardrailPolicy: {problems}") from None

    @field_validator("actions")
    @classmethod
    def _known(cls, v: Mapping[str, str]) -> Mapping[str, str]:
        allowed_keys = {*ENTITY_TYPES, "INJECTION", "TOXICITY", "*"}
        bad = set(v) - allowed_keys
        if bad:
            raise ValueError(f"unknown policy key(s) {sorted(bad)}; use {sorted(allowed_keys)}")
        bad_actions = {a for a in v.values() if a not in ("redact", "block", "flag", "allow")}
        if bad_actions:
            raise ValueError(f"unknown action(s) {sorted(bad_actions)}; use redact, block, flag or allow")
        merged = {"*": "redact", "INJECTION": "block", "TOXICITY": "flag", **v}
        if merged["INJECTION"] == "redact" or merged["TOXICITY"] == "redact":
            raise ValueError("INJECTION and TOXICITY can be block, flag or allow (there is no span to redact)")
        return merged

    @field_validator("toxicity")
    @classmethod
    def _toxicity_callable(cls, v: Any) -> Any:
        if v is not None and not callable(v):
            raise ValueError("toxicity must be a ToxicityDetector (a callable text -> Verdict) or None")
        return v

    def action_for(self, kind: str) -> str:
        """The configured action for an entity type, ``INJECTION`` or ``TOXICITY``."""
        return self.actions.get(kind, self.actions.get("*", "redact"))


@dataclass(frozen=True)
class GuardrailRecord:
    """One thing the guardrail saw: never the raw value, only its type, place and what was done."""

    agent: str
    where: str
    entity_type: str
    action: str
    score: float
    turn: int
    tool: str | None = None
    detail: str = ""


def _texts_of_request(event: ModelRequest) -> list[str]:
    return [p.content for p in event.parts if isinstance(p, TextInput)]


class GuardrailMiddleware:
    """AG2 middleware factory enforcing a :class:`GuardrailPolicy` for one agent.

    Configure once and pass to ``ag2.Agent(middleware=[...])``; AG2 calls it per turn to get a
    :class:`~ag2.middleware.BaseMiddleware`. Vaults are kept per conversation (the AG2 stream), so
    placeholders stay stable across ``reply.ask`` follow-ups.

    Args:
        agent: the agent's name, used in records and listener events.
        policy: what to do per entity type; defaults redact PII/secrets, block injection, flag toxicity.
        listeners: callables receiving ``("guardrail.finding", {"agent", "entity_type", "where",
            "action"})``; a listener that raises is logged and ignored.
        max_conversations: how many conversation vaults to keep (least recently used are dropped).
    """

    def __init__(
        self,
        agent: str,
        policy: GuardrailPolicy | None = None,
        *,
        listeners: Sequence[Listener] = (),
        max_conversations: int = 10_000,
    ) -> None:
        if not agent or not isinstance(agent, str):
            raise ConfigError("GuardrailMiddleware needs the agent's name: GuardrailMiddleware(agent='support')")
        self.agent = agent
        self.policy = policy or GuardrailPolicy()
        self.listeners = tuple(listeners)
        self._scanner: Callable[[str], list[Finding]] = self.policy.scanner or scan
        self._lock = threading.Lock()
        self._records: list[GuardrailRecord] = []
        self._vaults: OrderedDict[Any, Vault] = OrderedDict()
        self._max = max_conversations
        self._turns = 0

    # -- AG2 factory protocol -------------------------------------------------------------------
    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        with self._lock:
            self._turns += 1
            turn = self._turns
        return _GuardrailTurn(event, context, self, turn)

    def describe(self) -> MiddlewareDescription:
        """AG2-style introspection (no values)."""
        return MiddlewareDescription(
            kind=type(self).__qualname__,
            config={
                "agent": self.agent,
                "actions": dict(self.policy.actions),
                "injection_threshold": self.policy.injection_threshold,
                "tool_result_injection_threshold": self.policy.tool_result_injection_threshold,
            },
        )

    # -- state ---------------------------------------------------------------------------------
    def vault_for(self, context: Any) -> Vault:
        """The vault of the conversation this context belongs to (created on first use)."""
        stream = getattr(context, "stream", None)
        key = getattr(stream, "id", None) or id(context)
        with self._lock:
            vault = self._vaults.get(key)
            if vault is None:
                vault = self._vaults[key] = Vault()
                while len(self._vaults) > self._max:
                    self._vaults.popitem(last=False)
            else:
                self._vaults.move_to_end(key)
            return vault

    @property
    def records(self) -> list[GuardrailRecord]:
        """Everything recorded so far (copies; no raw values)."""
        with self._lock:
            return list(self._records)

    def findings_frame(self) -> Any:
        """The records as a pandas DataFrame: turn, where, tool, entity_type, action, score, detail."""
        import pandas as pd

        cols = ["turn", "agent", "where", "tool", "entity_type", "action", "score", "detail"]
        frame = pd.DataFrame([r.__dict__ for r in self.records], columns=cols)
        frame["tool"] = frame["tool"].fillna("-")
        return frame

    def clear(self) -> None:
        """Forget records and vaults."""
        with self._lock:
            self._records.clear()
            self._vaults.clear()

    def _record(self, rec: GuardrailRecord) -> None:
        with self._lock:
            self._records.append(rec)
        payload = {
            "agent": rec.agent,
            "entity_type": rec.entity_type,
            "where": rec.where,
            "action": rec.action,
        }
        notify(self.listeners, GUARDRAIL_FINDING, payload)

    # -- the checks (shared by the per-turn middleware) ----------------------------------------
    def check_text(
        self,
        text: str,
        where: str,
        vault: Vault,
        turn: int,
        tool: str | None = None,
        *,
        injection: bool = False,
    ) -> tuple[str, str | None]:
        """Apply the policy to one text; returns (possibly redacted text, block reason or None)."""
        policy = self.policy
        blocked: str | None = None
        if injection:
            bar = policy.tool_result_injection_threshold if where == "tool_result" else policy.injection_threshold
            verdict = detect_injection(text, bar)
            action = policy.action_for("INJECTION")
            if verdict.flagged and action != "allow":
                self._record(
                    GuardrailRecord(
                        self.agent,
                        where,
                        "INJECTION",
                        action,
                        verdict.score,
                        turn,
                        tool,
                        ", ".join(verdict.reasons),
                    )
                )
                if action == "block":
                    blocked = "possible prompt injection"
        if policy.toxicity is not None and where in ("input", "output"):
            tv = policy.toxicity(text)
            action = policy.action_for("TOXICITY")
            if tv.flagged and action != "allow":
                self._record(
                    GuardrailRecord(self.agent, where, "TOXICITY", action, tv.score, turn, tool, ", ".join(tv.reasons))
                )
                if action == "block" and blocked is None:
                    blocked = "abusive language"
        to_redact: list[Finding] = []
        for f in self._scanner(text):
            action = policy.action_for(f.entity_type)
            if action == "allow":
                continue
            self._record(GuardrailRecord(self.agent, where, f.entity_type, action, f.score, turn, tool))
            if action == "block" and blocked is None:
                blocked = f"contains {f.entity_type}"
            if action in ("redact", "block"):
                to_redact.append(f)
        return (vault.redact(text, to_redact) if to_redact else text), blocked


class _GuardrailTurn(BaseMiddleware):
    """Per-turn instance created by :class:`GuardrailMiddleware`."""

    def __init__(self, event: BaseEvent, context: Any, guard: GuardrailMiddleware, turn: int) -> None:
        super().__init__(event, context)
        self.guard = guard
        self.turn = turn
        self._blocked_calls: dict[str, str] = {}

    async def on_turn(self, call_next: Any, event: BaseEvent, context: Any) -> ModelResponse:
        guard = self.guard
        vault = guard.vault_for(context)
        deps = getattr(context, "dependencies", None)
        if isinstance(deps, dict):
            deps[VAULT_KEY] = vault
        if guard.policy.scan_input and isinstance(event, ModelRequest):
            parts = []
            reasons: list[str] = []
            changed = False
            for part in event.parts:
                if isinstance(part, TextInput):
                    clean, reason = guard.check_text(part.content, "input", vault, self.turn, injection=True)
                    if reason:
                        reasons.append(reason)
                    if clean != part.content:
                        changed = True
                        part = TextInput(clean)
                parts.append(part)
            if reasons:
                text = guard.policy.refusal.format(reason="; ".join(dict.fromkeys(reasons)))
                return ModelResponse(ModelMessage(text), finish_reason="content_filter")
            if changed:
                event = ModelRequest(parts)
        return await call_next(event, context)

    async def on_llm_call(self, call_next: Any, events: Sequence[BaseEvent], context: Any) -> ModelResponse:
        resp: ModelResponse = await call_next(events, context)
        guard = self.guard
        vault = guard.vault_for(context)
        changed = False
        new = copy(resp)
        if guard.policy.scan_output and resp.message is not None and resp.message.content:
            clean, reason = guard.check_text(resp.message.content, "output", vault, self.turn)
            if reason:
                clean = guard.policy.refusal.format(reason=f"the answer {reason}")
            if clean != resp.message.content:
                new.message = ModelMessage(clean, metadata=resp.message.metadata)
                changed = True
        if guard.policy.scan_tools and resp.tool_calls:
            calls = []
            for call in resp.tool_calls.calls:
                clean, reason = guard.check_text(call.arguments or "", "tool_args", vault, self.turn, call.name)
                if reason:
                    self._blocked_calls[call.id] = reason
                if clean != call.arguments:
                    call = copy(call)
                    call.arguments = clean
                    call._serialized_arguments = None
                    changed = True
                calls.append(call)
            if changed:
                new.tool_calls = ToolCallsEvent(calls)
        return new if changed else resp

    async def on_tool_execution(self, call_next: Any, event: ToolCallEvent, context: Any) -> Any:
        guard = self.guard
        vault = guard.vault_for(context)
        reason = self._blocked_calls.get(event.id)
        if reason:
            return ToolResultEvent.from_call(event, result=f"DENIED: tool arguments {reason}")
        result = await call_next(event, context)
        if not guard.policy.scan_tools or not isinstance(result, ToolResultEvent):
            return result
        parts = result.result.parts
        new_parts = []
        changed = False
        for part in parts:
            if isinstance(part, TextInput):
                text = part.content
            elif isinstance(part, DataInput):
                text = json.dumps(part.data, default=str, sort_keys=True)
            else:
                new_parts.append(part)
                continue
            clean, reason = guard.check_text(
                text,
                "tool_result",
                vault,
                self.turn,
                event.name,
                injection=guard.policy.check_tool_results_for_injection,
            )
            if reason:
                clean = f"BLOCKED: the tool result was withheld by a safety policy ({reason})"
            if clean != text:
                changed = True
                new_parts.append(TextInput(clean))
            else:
                new_parts.append(part)
        if not changed:
            return result
        new = copy(result)
        new.result = ToolResult(parts=new_parts, final=result.result.final, metadata=result.result.metadata)
        return new
