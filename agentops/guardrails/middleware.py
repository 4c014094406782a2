"""The AG2 middleware: :class:`GuardrailMiddleware` applies a :class:`GuardrailPolicy` to everything an agent
reads and writes.

Where each check runs (AG2's hooks, one instance per turn from a factory configured once):

* ``on_turn`` — the user's message, before history stores it: text parts and structured
  ``DataInput`` parts (string leaves redacted in place) are scanned; injection is scored on the
  message and on the last few user messages of the conversation joined, so an instruction split
  across two turns is seen whole. Binary parts (images, files) are passed on unscanned.
* ``on_llm_call`` — the model's answer and its tool-call arguments (parsed; each string argument
  redacted on its own, URLs kept in URL arguments). Streamed output is redacted *before* stream
  observers see it: the model client is handed a context whose stream buffers the chunks of one
  message and publishes them redacted when the message is complete (so a streaming UI receives text
  per message, not per token, while the guardrail is on; see ``redact_stream``).
* ``on_tool_execution`` — tool results (text and ``DataInput``), with their own injection threshold
  (indirect injection), and refusals of calls whose arguments were blocked.
* tool middleware :func:`restore_into` / :func:`restore_placeholders` — the policy-bound vault.

Text longer than ``max_scan_chars`` is cut and the rest withheld (never passed on unscanned); text
longer than ``offload_chars`` is scanned in a worker thread. Every finding is recorded as (agent,
where, entity type, action) — never the raw value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from copy import copy
from typing import Any

from ag2.events import (
    BaseEvent,
    DataInput,
    ModelMessage,
    ModelMessageChunk,
    ModelRequest,
    ModelResponse,
    TextInput,
    ToolCallEvent,
    ToolCallsEvent,
    ToolResult,
    ToolResultEvent,
)
from ag2.middleware import BaseMiddleware, MiddlewareDescription

from agentops import _ag2
from agentops.errors import ConfigError
from agentops.guardrails._types import Finding
from agentops.guardrails.injection import detect_injection
from agentops.guardrails.policy import GuardrailPolicy, GuardrailRecord
from agentops.guardrails.redaction import GUARD_KEY, PLACEHOLDER, TURN_KEY, VAULT_KEY, Vault
from agentops.guardrails.scanners import scan
from agentops.listeners import GUARDRAIL_FINDING, Listener, notify

__all__ = ["GuardrailMiddleware"]

log = logging.getLogger(__name__)

_ORIGIN = {"input": "input", "output": "output", "tool_args": "output", "tool_result": "tool_result"}
_WITHHELD = "\n[... {n} characters withheld: over the guardrail's scan limit of {cap}]"


class _Conversation:
    __slots__ = ("recent", "vault")

    def __init__(self, window: int) -> None:
        self.vault = Vault()
        self.recent: deque[str] = deque(maxlen=window)


class GuardrailMiddleware:
    """AG2 middleware factory enforcing a :class:`GuardrailPolicy` for one agent.

    Configure once and pass to ``ag2.Agent(middleware=[...])``; AG2 calls it per turn to get a
    :class:`~ag2.middleware.BaseMiddleware`. Vaults are kept per conversation (the AG2 stream), so
    placeholders stay stable across ``reply.ask`` follow-ups. Thread- and asyncio-safe: one factory
    may serve concurrent conversations.

    Args:
        agent: the agent's name, used in records and listener events.
        policy: what to do per entity type; defaults redact PII/secrets, block injection, flag toxicity,
            restore nothing.
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
        self._conversations: OrderedDict[Any, _Conversation] = OrderedDict()
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
            },
        )

    # -- state ---------------------------------------------------------------------------------
    def _conversation(self, context: Any) -> _Conversation:
        stream = getattr(context, "stream", None)
        key = getattr(stream, "id", None) or id(context)
        with self._lock:
            conv = self._conversations.get(key)
            if conv is None:
                conv = self._conversations[key] = _Conversation(self.policy.conversation_window)
                while len(self._conversations) > self._max:
                    self._conversations.popitem(last=False)
            else:
                self._conversations.move_to_end(key)
            return conv

    def vault_for(self, context: Any) -> Vault:
        """The vault of the conversation this context belongs to (created on first use)."""
        return self._conversation(context).vault

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
            self._conversations.clear()

    def _record(self, rec: GuardrailRecord) -> None:
        with self._lock:
            self._records.append(rec)
        payload = {"agent": rec.agent, "entity_type": rec.entity_type, "where": rec.where, "action": rec.action}
        notify(self.listeners, GUARDRAIL_FINDING, payload)

    def record_refusals(self, tool: str, refusals: Sequence[tuple[str, str, str]], turn: int = 0) -> None:
        """Record values the vault refused to restore into ``tool`` (argument, entity type, why)."""
        for arg, kind, why in dict.fromkeys(refusals):
            self._record(GuardrailRecord(self.agent, "tool_args", kind, "deny", 1.0, turn, tool, f"{arg}: {why}"))

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
        keep: frozenset[str] = frozenset(),
        context_text: str | None = None,
    ) -> tuple[str, str | None]:
        """Apply the policy to one text; returns (possibly redacted text, block reason or None).

        ``keep`` lists entity types left in place (URLs in a URL argument); ``context_text`` is the
        recent conversation, also scored for injection.
        """
        policy = self.policy
        cap = policy.max_scan_chars
        suffix = ""
        if len(text) > cap:
            suffix = _WITHHELD.format(n=len(text) - cap, cap=cap)
            text = text[:cap]
            self._record(GuardrailRecord(self.agent, where, "SCAN_LIMIT", "redact", 1.0, turn, tool))
        blocked = self._check_injection(text, where, turn, tool, context_text) if injection else None
        if policy.toxicity is not None and where in ("input", "output"):
            tv = policy.toxicity(text)
            action = policy.action_for("TOXICITY")
            if tv.flagged and action != "allow":
                detail = ", ".join(tv.reasons)
                self._record(GuardrailRecord(self.agent, where, "TOXICITY", action, tv.score, turn, tool, detail))
                if action == "block" and blocked is None:
                    blocked = "abusive language"
        held = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)] if "[" in text else []
        to_redact: list[Finding] = []
        for f in self._scanner(text):
            if f.entity_type in keep or any(s < f.end and f.start < e for s, e in held):
                continue  # a placeholder is never re-detected (or re-minted) as a new value
            action = policy.action_for(f.entity_type)
            if action == "allow":
                continue
            self._record(GuardrailRecord(self.agent, where, f.entity_type, action, f.score, turn, tool))
            if action == "block" and blocked is None:
                blocked = f"contains {f.entity_type}"
            if action in ("redact", "block"):
                to_redact.append(f)
        clean = vault.redact(text, to_redact, origin=_ORIGIN.get(where, where)) if to_redact else text
        return clean + suffix, blocked

    def _check_injection(
        self, text: str, where: str, turn: int, tool: str | None, context_text: str | None
    ) -> str | None:
        policy = self.policy
        threshold = policy.tool_result_injection_threshold if where == "tool_result" else policy.injection_threshold
        verdict = detect_injection(text, threshold)
        detail = ", ".join(verdict.reasons)
        if not verdict.flagged and context_text:
            joined = detect_injection(context_text + "\n" + text, threshold)
            if joined.flagged:
                verdict, detail = joined, "across turns: " + ", ".join(joined.reasons)
        action = policy.action_for("INJECTION")
        if not verdict.flagged or action == "allow":
            return None
        self._record(GuardrailRecord(self.agent, where, "INJECTION", action, verdict.score, turn, tool, detail))
        return "possible prompt injection" if action == "block" else None

    async def acheck_text(self, text: str, *args: Any, **kwargs: Any) -> tuple[str, str | None]:
        """:meth:`check_text`, in a worker thread when the text is longer than ``offload_chars``."""
        if len(text) > self.policy.offload_chars:
            return await asyncio.to_thread(self.check_text, text, *args, **kwargs)
        return self.check_text(text, *args, **kwargs)

    async def check_data(
        self, data: Any, where: str, vault: Vault, turn: int, tool: str | None = None, *, injection: bool = False
    ) -> tuple[Any, str | None]:
        """Apply the policy to structured data: injection on its JSON text, redaction leaf by leaf."""
        blocked = None
        if injection:
            text = json.dumps(data, default=str, ensure_ascii=False)
            blocked = self._check_injection(text, where, turn, tool, None)
        reasons: list[str] = []

        async def walk(obj: Any, key: str | None) -> Any:
            if isinstance(obj, str):
                keep = frozenset({"URL"}) if key and self.policy.is_url_argument(tool, key) else frozenset()
                clean, reason = await self.acheck_text(obj, where, vault, turn, tool, keep=keep)
                if reason:
                    reasons.append(reason)
                return clean
            if isinstance(obj, dict):
                return {k: await walk(v, k if isinstance(k, str) else key) for k, v in obj.items()}
            if isinstance(obj, (list, tuple)):
                return [await walk(v, key) for v in obj]
            if obj is None or isinstance(obj, (bool, int, float)):
                return obj
            # Any other object (a pydantic model, a dataclass, an event): scan what it holds as data.
            plain = _as_plain(obj)
            return obj if plain is obj else await walk(plain, key)

        clean = await walk(data, None)
        return clean, blocked or (reasons[0] if reasons else None)


def _as_plain(obj: Any) -> Any:
    """JSON-like data for an object (``model_dump``, dataclass fields, else its text); ``obj`` if unchanged."""
    import dataclasses

    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:
            return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return str(obj)


class _RedactingStream:
    """The stream a model client publishes through during one guarded LLM call.

    ``ModelMessage`` events are redacted before they are published; ``ModelMessageChunk`` events are
    held until their message is complete (a final ``ModelMessage`` supersedes them; otherwise they are
    published as one redacted chunk when the call returns). Everything else passes straight through.
    """

    def __init__(self, inner: Any, redact: Callable[[str], str]) -> None:
        self._inner = inner
        self._redact = redact
        self._chunks: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def send(self, event: BaseEvent, context: Any) -> None:
        if isinstance(event, ModelMessageChunk):
            self._chunks.append(event.content)
            return
        if isinstance(event, ModelMessage):
            self._chunks.clear()
            event = ModelMessage(self._redact(event.content), metadata=event.metadata)
        await self._inner.send(event, context)

    async def flush(self, context: Any) -> None:
        if self._chunks:
            text, self._chunks = "".join(self._chunks), []
            await self._inner.send(ModelMessageChunk(self._redact(text)), context)


class _GuardrailTurn(BaseMiddleware):
    """Per-turn instance created by :class:`GuardrailMiddleware`."""

    def __init__(self, event: BaseEvent, context: Any, guard: GuardrailMiddleware, turn: int) -> None:
        super().__init__(event, context)
        self.guard = guard
        self.turn = turn
        self._blocked_calls: dict[str, str] = {}

    async def on_turn(self, call_next: Any, event: BaseEvent, context: Any) -> ModelResponse:
        guard = self.guard
        conv = guard._conversation(context)
        deps = getattr(context, "dependencies", None)
        if isinstance(deps, dict):
            deps[VAULT_KEY] = conv.vault
            deps[GUARD_KEY] = guard
            deps[TURN_KEY] = self.turn
        if guard.policy.scan_input and isinstance(event, ModelRequest):
            parts, reasons, changed = await self._scan_parts(event.parts, "input", conv)
            if reasons:
                text = guard.policy.refusal.format(reason="; ".join(dict.fromkeys(reasons)))
                return ModelResponse(ModelMessage(text), finish_reason="content_filter")
            if changed:
                event = ModelRequest(parts)
        return await call_next(event, context)

    async def _scan_parts(
        self, parts: Sequence[Any], where: str, conv: _Conversation, tool: str | None = None
    ) -> tuple[list[Any], list[str], bool]:
        guard, vault = self.guard, conv.vault
        out: list[Any] = []
        reasons: list[str] = []
        changed = False
        injection = where == "input" or guard.policy.check_tool_results_for_injection
        for part in parts:
            if isinstance(part, TextInput):
                context_text = "\n".join(conv.recent) if where == "input" and conv.recent else None
                clean, reason = await guard.acheck_text(
                    part.content, where, vault, self.turn, tool, injection=injection, context_text=context_text
                )
                if where == "input":
                    conv.recent.append(part.content[-2000:])
                new_part: Any = TextInput(clean) if clean != part.content else part
            elif isinstance(part, DataInput):
                data, reason = await guard.check_data(part.data, where, vault, self.turn, tool, injection=injection)
                new_part = DataInput(data) if data != part.data else part
            else:
                out.append(part)  # binary parts (images, files) are not scanned
                continue
            if reason:
                reasons.append(reason)
            changed = changed or new_part is not part
            out.append(new_part)
        return out, reasons, changed

    async def on_llm_call(self, call_next: Any, events: Sequence[BaseEvent], context: Any) -> ModelResponse:
        guard = self.guard
        vault = guard.vault_for(context)
        stream = None
        if guard.policy.scan_output and guard.policy.redact_stream:
            stream = _RedactingStream(_ag2.context_stream(context), lambda t: vault.redact(t, self._findings(t)))
            resp: ModelResponse = await call_next(events, _ag2.with_stream(context, stream))
            await stream.flush(context)
        else:
            resp = await call_next(events, context)
        new = copy(resp)
        changed = False
        if guard.policy.scan_output and resp.message is not None and resp.message.content:
            clean, reason = await guard.acheck_text(resp.message.content, "output", vault, self.turn)
            if reason:
                clean = guard.policy.refusal.format(reason=f"the answer {reason}")
            if clean != resp.message.content:
                new.message = ModelMessage(clean, metadata=resp.message.metadata)
                changed = True
        if guard.policy.scan_tools and resp.tool_calls:
            calls, calls_changed = [], False
            for call in resp.tool_calls.calls:
                clean_call = await self._scan_call(call, vault)
                calls_changed = calls_changed or clean_call is not call
                calls.append(clean_call)
            if calls_changed:
                new.tool_calls = ToolCallsEvent(calls)
                changed = True
        return new if changed else resp

    def _findings(self, text: str) -> list[Finding]:
        """What the stream redacts: the same findings the final check will record (not recorded twice)."""
        policy = self.guard.policy
        return [f for f in self.guard._scanner(text) if policy.action_for(f.entity_type) in ("redact", "block")]

    async def _scan_call(self, call: ToolCallEvent, vault: Vault) -> ToolCallEvent:
        guard = self.guard
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            args = None
        if isinstance(args, dict):
            clean, reason = await guard.check_data(args, "tool_args", vault, self.turn, call.name)
            text = json.dumps(clean, ensure_ascii=False)
        else:
            clean = None
            text, reason = await guard.acheck_text(call.arguments or "", "tool_args", vault, self.turn, call.name)
        if reason:
            self._blocked_calls[call.id] = reason
        if (isinstance(args, dict) and clean == args) or text == call.arguments:
            return call
        call = copy(call)
        call.arguments = text
        if isinstance(clean, dict):
            call.serialized_arguments = clean
        return call

    async def on_tool_execution(self, call_next: Any, event: ToolCallEvent, context: Any) -> Any:
        guard = self.guard
        reason = self._blocked_calls.get(event.id)
        if reason:
            return ToolResultEvent.from_call(event, result=f"DENIED: tool arguments {reason}")
        result = await call_next(event, context)
        if not guard.policy.scan_tools or not isinstance(result, ToolResultEvent):
            return result
        conv = guard._conversation(context)
        parts, reasons, changed = await self._scan_parts(result.result.parts, "tool_result", conv, event.name)
        if reasons:
            note = f"BLOCKED: the tool result was withheld by a safety policy ({'; '.join(dict.fromkeys(reasons))})"
            parts, changed = [TextInput(note)], True
        if not changed:
            return result
        new = copy(result)
        new.result = ToolResult(parts=parts, final=result.result.final, metadata=result.result.metadata)
        return new
