"""Tool-call arguments the model sent are checked before any tool runs; tool rounds are capped.

Small real models invent tool calls: arguments that are not JSON (cut at ``max_tokens``, unbalanced
quotes), not an object, or a loop of calls that never ends. AG2 decodes a call's arguments lazily
(``ToolCallEvent.serialized_arguments``): a tool middleware or the tool itself raises a raw
``JSONDecodeError``, and sending the history back to an OpenAI-compatible provider raises it out of
the whole turn. This module stops that at the first place the package sees the model's answer:

* :func:`check_tool_calls` raises :class:`~agentops.errors.MalformedOutputError` (retryable) naming the
  model, the tool, what is wrong and the fix, and carries the answer (``exc.response``) so the served
  tokens can still be booked. Every real-provider config from :func:`agentops.models.model_config`
  checks each answer with it (:func:`checked_client`), and
  :func:`~agentops.resilience.validation.check_output` includes it, so ``RetryPolicy`` and
  ``FallbackModel`` ask again.
* :class:`ToolCallGuard` is AG2 middleware that turns that error into a tool result instead: the call's
  arguments become ``{}`` (so the history stays valid for every provider) and the call is answered,
  without running the tool, with a result that names the problem and asks for a JSON object.

Which to use. A retry repeats the same request: a provider that samples may answer well the second
time, but a local model at temperature 0 with a seed cuts the same arguments at the same ``max_tokens``
every time. Answering the model, as OpenAI-style agent loops do, gives it what it needs to correct
itself (or to answer without the tool) and costs one more call in the same turn. So: with a resilience
stack and no guard, the error is retried and then raised, clear and retryable; with ``ToolCallGuard``
the model is told. Either way the tool never runs and the model call is booked once, for what was
served (:func:`agentops.usage.served_response`; with a ``RetryPolicy`` inside, every attempt), as a
served call counted malformed — never as an error: ``UsageMeter.malformed_calls`` and budget outcome
``"malformed"`` for meters and budgets inside the guard, Prometheus ``agentops_malformed_answers_total``
(the guard reports each answer it fixed to its ``listeners``). Put the guard *outermost* (first in
``middleware=[...]``): it answers the call before any other tool middleware (authorization and its
audit log, a per-call tool cost, the vault) sees it, and a ``RetryPolicy`` inside it gets its retries
first.

Example::

    guard = ToolCallGuard(max_tool_rounds=3)
    agent = ag2.Agent("ops", "Use tools.", config=cfg, tools=[get_weather], middleware=[guard, meter])
    ...
    guard.calls, guard.malformed, guard.capped  # counts, across turns
    guard.drain()  # ["get_weather: the arguments are not valid JSON (...)"], then cleared
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from ag2.config import LLMClient
from ag2.events import (
    BaseEvent,
    ModelMessage,
    ModelResponse,
    ToolCallEvent,
    ToolCallsEvent,
    ToolResultEvent,
)
from ag2.middleware import BaseMiddleware

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError, MalformedOutputError
from agentops.listeners import MALFORMED_ANSWER, Listener, checked_listeners, notify
from agentops.usage import keep_served_before, served_response

__all__ = ["ToolCallGuard", "check_arguments", "check_tool_calls", "checked_client"]


def check_arguments(arguments: str | None) -> str | None:
    """Why these tool-call arguments are unusable (``None`` when they decode to a JSON object)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError as exc:
        preview = (arguments or "")[:60]
        return f"the arguments are not valid JSON ({exc.msg}; character {exc.pos}): {preview!r}"
    if not isinstance(value, dict):
        return f"the arguments must be a JSON object, got {type(value).__name__}: {(arguments or '')[:60]!r}"
    return None


def check_tool_calls(response: ModelResponse) -> ModelResponse:
    """Return ``response`` when every tool call's arguments decode to a JSON object, else raise.

    Raises:
        MalformedOutputError: retryable; ``exc.response`` is the answer, ``exc.problems`` maps each
            bad call's id to why it is unusable. The message names the model, the tool and the fix.

    >>> from ag2.events import ToolCallsEvent
    >>> bad = ModelResponse(tool_calls=ToolCallsEvent([ToolCallEvent("f", id="c1", arguments='{"a": ')]), model="m")
    >>> try:
    ...     check_tool_calls(bad)
    ... except MalformedOutputError as exc:
    ...     print(str(exc).split(":")[0], "|", sorted(exc.problems))
    the model 'm' called tool 'f' with unusable arguments | ['c1']
    """
    calls = list(response.tool_calls.calls) if response.tool_calls is not None else []
    problems = {c.id: p for c in calls if (p := check_arguments(c.arguments)) is not None}
    if not problems:
        return response
    bad = next(c for c in calls if c.id in problems)
    cut = " — the answer stopped at the token limit: raise max_tokens" if response.finish_reason == "length" else ""
    more = f" (and {len(problems) - 1} more call(s))" if len(problems) > 1 else ""
    exc = MalformedOutputError(
        f"the model {response.model or 'the model'!r} called tool {bad.name!r} with unusable arguments{more}: "
        f"{problems[bad.id]}{cut}. The tool was not run; ask again (RetryPolicy retries this), or add "
        "agentops.toolguard.ToolCallGuard to the agent's middleware so the model is told and can correct itself",
        request_id=response.response_id,
    )
    exc.response, exc.problems = response, problems  # type: ignore[attr-defined]
    raise exc


class _CheckedClient(LLMClient):
    """An AG2 client whose answers pass :func:`check_tool_calls` before AG2 sees them."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner

    async def __call__(self, messages: Any, context: Any, **kwargs: Any) -> ModelResponse:
        return check_tool_calls(await self.inner(messages, context, **kwargs))

    def __getattr__(self, name: str) -> Any:  # files clients, close(), ... of the wrapped client
        return getattr(self.inner, name)


def checked_client(client: LLMClient) -> LLMClient:
    """Wrap an AG2 ``LLMClient`` so malformed tool-call arguments raise :class:`MalformedOutputError`."""
    return client if isinstance(client, _CheckedClient) else _CheckedClient(client)


class ToolCallGuard:
    """AG2 middleware factory; one guard may serve many agents and turns (counters are thread-safe).

    Args:
        max_tool_rounds: model responses with tool calls allowed per turn; later ones end the turn.
        agent: the agent's name, in the events reported to ``listeners``.
        listeners: receive ``("llm.malformed", {"agent", "model", "tools"})`` for each answer whose tool
            calls the guard answered (``Telemetry.listener`` counts it in
            ``agentops_malformed_answers_total``, as it counts a malformed answer that was raised).
    """

    def __init__(self, max_tool_rounds: int = 4, *, agent: str = "", listeners: Iterable[Listener] = ()) -> None:
        if isinstance(max_tool_rounds, bool) or not isinstance(max_tool_rounds, int) or max_tool_rounds < 1:
            raise ConfigError(f"max_tool_rounds must be a positive int, got {max_tool_rounds!r}")
        self.max_tool_rounds = max_tool_rounds
        self.agent = agent
        self.listeners = checked_listeners(listeners, "ToolCallGuard")
        self._lock = threading.Lock()
        self.malformed = 0
        self.capped = 0
        self.calls = 0
        self._notes: deque[str] = deque(maxlen=100)

    def drain(self) -> list[str]:
        """One line per malformed call answered since the last ``drain`` (tool and problem), oldest first.

        >>> ToolCallGuard().drain()
        []
        """
        with self._lock:
            notes = list(self._notes)
            self._notes.clear()
        return notes

    def _note(self, tool: str, problem: str) -> None:
        with self._lock:
            self._notes.append(f"{tool}: {problem}")

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def __call__(self, event: BaseEvent, context: Any) -> _GuardTurn:
        return _GuardTurn(event, context, guard=self)

    def __repr__(self) -> str:
        return f"ToolCallGuard(max_tool_rounds={self.max_tool_rounds})"


class _GuardTurn(BaseMiddleware):
    def __init__(self, event: BaseEvent, context: Any, *, guard: ToolCallGuard) -> None:
        super().__init__(event, context)
        self.guard = guard
        self.rounds = 0
        self.bad: dict[str, str] = {}

    async def on_llm_call(self, call_next: Any, events: Sequence[BaseEvent], context: Any) -> ModelResponse:
        try:
            response = await call_next(events, context)
        except MalformedOutputError as exc:
            answer = getattr(exc, "response", None)
            if answer is None or not getattr(exc, "problems", None):  # not tool arguments: not this guard's
                raise
            served = served_response(exc)  # a retry policy inside adds what its earlier attempts served
            if served is not None and served is not answer:
                answer = _rebuilt(served, answer.message, list(answer.tool_calls.calls))
            response = answer
        calls = list(response.tool_calls.calls) if response.tool_calls else []
        if not calls:
            return response
        self.rounds += 1
        self.guard._count("calls", len(calls))
        if self.rounds > self.guard.max_tool_rounds:
            self.guard._count("capped")
            text = response.content or (
                f"(stopped: the model asked for more tools after {self.guard.max_tool_rounds} tool rounds)"
            )
            return _rebuilt(response, ModelMessage(text), [], finish_reason="tool_rounds")
        fixed, self.bad = [], {}  # this round's calls only: servers may reuse ids across rounds
        for call in calls:
            problem = check_arguments(call.arguments)
            if problem is not None:
                self.bad[call.id] = problem
                self.guard._count("malformed")
                self.guard._note(call.name, problem)
                call = ToolCallEvent(call.name, id=call.id, arguments="{}")
            fixed.append(call)
        if self.bad:
            payload = {"agent": self.guard.agent, "model": response.model or "", "tools": len(self.bad)}
            notify(self.guard.listeners, MALFORMED_ANSWER, payload)
            return _rebuilt(response, response.message, fixed)
        return response

    async def on_tool_execution(self, call_next: Any, event: ToolCallEvent, context: Any) -> Any:
        problem = self.bad.pop(event.id, None)
        if problem is None:
            return await call_next(event, context)
        return ToolResultEvent.from_call(
            event,
            f"error: tool {event.name!r} was not run because {problem}. "
            "Call it again with a JSON object matching its parameters, or answer without it.",
        )


def _rebuilt(
    response: ModelResponse, message: ModelMessage | None, calls: list[ToolCallEvent], finish_reason: str | None = None
) -> ModelResponse:
    copy = ModelResponse(
        message,
        tool_calls=ToolCallsEvent(calls),
        usage=response.usage,
        files=response.files,
        model=response.model,
        provider=response.provider,
        finish_reason=finish_reason or response.finish_reason,
        response_id=response.response_id,
    )
    return keep_served_before(response, copy)
