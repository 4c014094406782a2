"""Tool-call guard: malformed arguments go back to the model as an error, and tool rounds are capped.

Small real models invent tool calls: arguments that are not JSON (cut at ``max_tokens``, unbalanced
quotes), not an object, or a loop of calls that never ends. In AG2 a call whose arguments cannot be
decoded raises ``JSONDecodeError`` out of the whole turn (when the tool runs, or when the history is
sent back to the provider). :class:`ToolCallGuard` is AG2 middleware that instead

* rewrites such a call's arguments to ``{}`` (so the history stays valid for every provider) and
  answers it, without running the tool, with a tool result that names the problem and asks for a
  JSON object — the model gets a chance to correct itself;
* counts tool rounds per turn and, past ``max_tool_rounds``, drops further tool calls and ends the
  turn with the model's text (or a note), finish reason ``"tool_rounds"``.

Example::

    guard = ToolCallGuard(max_tool_rounds=3)
    agent = ag2.Agent("ops", "Use tools.", config=cfg, tools=[get_weather], middleware=[guard])
    ...
    guard.malformed, guard.capped  # counts, across turns
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from ag2.events import BaseEvent, ModelMessage, ModelResponse, ToolCallEvent, ToolCallsEvent, ToolResultEvent
from ag2.middleware import BaseMiddleware

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError

__all__ = ["ToolCallGuard", "check_arguments"]


def check_arguments(arguments: str | None) -> str | None:
    """Why these tool-call arguments are unusable (``None`` when they decode to a JSON object)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError as exc:
        preview = (arguments or "")[:60]
        return f"the arguments are not valid JSON ({exc.msg} at character {exc.pos}): {preview!r}"
    if not isinstance(value, dict):
        return f"the arguments must be a JSON object, got {type(value).__name__}: {(arguments or '')[:60]!r}"
    return None


class ToolCallGuard:
    """AG2 middleware factory; one guard may serve many agents and turns (counters are thread-safe).

    Args:
        max_tool_rounds: model responses with tool calls allowed per turn; later ones end the turn.
    """

    def __init__(self, max_tool_rounds: int = 4) -> None:
        if isinstance(max_tool_rounds, bool) or not isinstance(max_tool_rounds, int) or max_tool_rounds < 1:
            raise ConfigError(f"max_tool_rounds must be a positive int, got {max_tool_rounds!r}")
        self.max_tool_rounds = max_tool_rounds
        self._lock = threading.Lock()
        self.malformed = 0
        self.capped = 0

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

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
        response = await call_next(events, context)
        calls = list(response.tool_calls.calls) if response.tool_calls else []
        if not calls:
            return response
        self.rounds += 1
        if self.rounds > self.guard.max_tool_rounds:
            self.guard._count("capped")
            text = response.content or (
                f"(stopped: the model asked for more tools after {self.guard.max_tool_rounds} tool rounds)"
            )
            return _rebuilt(response, ModelMessage(text), [], finish_reason="tool_rounds")
        fixed = []
        for call in calls:
            problem = check_arguments(call.arguments)
            if problem is not None:
                self.bad[call.id] = problem
                self.guard._count("malformed")
                call = ToolCallEvent(call.name, id=call.id, arguments="{}")
            fixed.append(call)
        if len(self.bad) and any(c.id in self.bad for c in fixed):
            return _rebuilt(response, response.message, fixed)
        return response

    async def on_tool_execution(self, call_next: Any, event: ToolCallEvent, context: Any) -> Any:
        problem = self.bad.get(event.id)
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
    return ModelResponse(
        message,
        tool_calls=ToolCallsEvent(calls),
        usage=response.usage,
        files=response.files,
        model=response.model,
        provider=response.provider,
        finish_reason=finish_reason or response.finish_reason,
        response_id=response.response_id,
    )
