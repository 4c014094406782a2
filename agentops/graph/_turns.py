"""One graph run's bookkeeping and the middleware every role's agent carries.

:class:`RunState` is shared by the role middleware and the ``handoff``/``finish`` tools of one run;
:class:`RoleTurn` (AG2 middleware, one instance per turn) gates each turn through the escalation
engine, meters its usage and writes its transcript row. Edges are enforced in the ``handoff`` tool:
``ag2.network`` does not check a tool's ``Handoff`` against the transition graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ag2
from ag2.events import ModelMessage, ModelRequest, ModelResponse, TextInput, ToolCallsEvent, Usage
from ag2.middleware import BaseMiddleware, Middleware
from ag2.network import Finish, Handoff

from agentops import _identity  # noqa: F401
from agentops.errors import TimeLimitExceeded
from agentops.escalation import Action, EscalationEngine, RunContext, Verdict
from agentops.graph.routing import STOP_ROUTE, RouteDecision, RouteParseError, parse_route, route_body
from agentops.listeners import HANDOFF_REFUSED, Listener, notify
from agentops.stack import MiddlewareSpec, extra_middleware
from agentops.usage import UsageMeter

if TYPE_CHECKING:
    from agentops.graph.roles import RoleGraph

__all__ = ["MAX_REFUSALS", "TRANSCRIPT_COLUMNS", "RunState", "build_agent"]

MAX_REFUSALS = 3
"""Refused handoffs after which a role's turn is ended (a model that keeps retrying cannot loop)."""
TRANSCRIPT_COLUMNS = ["step", "role", "action", "target", "tokens", "cost", "detail"]


@dataclass
class _Turn:
    step: int
    role: str
    action: str = "answer"
    target: str = ""
    tokens: int = 0
    cost: float | None = 0.0
    detail: str = ""
    text: str = ""
    finished: bool = False
    refused: int = 0
    ended: bool = False


class RunState:
    """Mutable state of one graph run, shared by the role middleware and the handoff tools."""

    def __init__(
        self,
        graph: RoleGraph,
        run_id: str,
        request: str,
        engine: EscalationEngine,
        listeners: Sequence[Listener],
        models: Mapping[str, Any],
    ) -> None:
        self.graph, self.run_id, self.request, self.engine = graph, run_id, request, engine
        self.listeners = tuple(listeners)
        self.models = models
        self.rows: list[dict[str, Any]] = []
        self._row("user", "request", graph.router, detail=" ".join(request.split())[:80])
        self.turns: list[_Turn] = []
        self.current: dict[str, _Turn] = {}
        self.path: list[str] = []
        self.refusals: list[dict[str, str]] = []
        self.decision: RouteDecision | None = None
        self.stopped = ""
        self.stop_action: Action | None = None
        self.error = ""
        self.failure: BaseException | None = None  # the exception behind ``error``, or the run's time limit
        self.tokens, self.cost, self.calls, self.errors, self.unpriced_calls = 0, 0.0, 0, 0, 0
        self.malformed = 0
        self.started = asyncio.get_running_loop().time()
        self.listener_errors = 0

    def _row(
        self, role: str, action: str, target: str, tokens: int = 0, cost: float | None = 0.0, detail: str = ""
    ) -> None:
        self.rows.append(
            {
                "step": len(self.rows) + 1,
                "role": role,
                "action": action,
                "target": target,
                "tokens": tokens,
                "cost": cost,
                "detail": detail,
            }
        )

    def begin(self, role: str) -> _Turn:
        turn = _Turn(len(self.rows) + 1, role)
        self.turns.append(turn)
        self.current[role] = turn
        self.path.append(role)
        return turn

    def end(self, turn: _Turn, meter: UsageMeter) -> None:
        """Book a finished turn; a turn with an unpriced call has cost ``None`` (its tokens still count)."""
        turn.tokens, turn.cost, turn.ended = meter.tokens, meter.cost_usd if meter.priced else None, True
        self.tokens += meter.tokens
        self.cost += meter.cost_usd
        self.calls += meter.calls
        self.errors += meter.errors
        self.malformed += meter.malformed_calls
        self.unpriced_calls += meter.unpriced_calls
        self._row(turn.role, turn.action, turn.target, turn.tokens, turn.cost, turn.detail)

    def answering(self) -> list[str]:
        """Roles whose turn has begun and not ended (the ones a deadline cuts off)."""
        return [t.role for t in self.turns if not t.ended]

    def refuse(self, src: str, dst: str, reason: str) -> None:
        self.refusals.append({"from": src, "to": dst, "reason": reason})
        self._row(src, "handoff.refused", dst, detail=reason)
        self.listener_errors += notify(self.listeners, HANDOFF_REFUSED, {"from": src, "to": dst, "reason": reason})

    async def gate(
        self, where: str, text: str, confidence: float | None = None, pending: UsageMeter | None = None
    ) -> Verdict:
        """Check the escalation engine; ``pending`` is the current turn's usage not yet booked."""
        ctx = RunContext(
            run_id=self.run_id,
            where=where,
            text=text,
            confidence=confidence,
            cost_usd=self.cost + (pending.cost_usd if pending else 0.0),
            tokens=self.tokens + (pending.tokens if pending else 0),
            calls=self.calls + (pending.calls if pending else 0),
            errors=self.errors + (pending.errors if pending else 0),
            malformed=self.malformed + (pending.malformed_calls if pending else 0),
            elapsed_s=asyncio.get_running_loop().time() - self.started,
            model=getattr(self.models.get(where), "model", ""),
        )
        return await self.engine.check(ctx)

    # -- the tools every role gets -------------------------------------------------------------
    def handoff(self, src: str, to: str, reason: str) -> Handoff | str:
        """Follow an allowed handoff; refuse anything else with a message the model can read."""
        dst = (to or "").strip().lower()
        allowed = self.graph.allowed(src)
        turn = self.current.get(src)
        if dst in allowed:
            if turn is not None and not turn.target:
                turn.action, turn.target, turn.detail = "handoff", dst, reason
            return Handoff(target=dst, reason=reason)
        why = (
            f"there is no role named {to!r}"
            if dst not in self.graph.role_names
            else f"{src!r} may not hand off to {dst!r}"
        )
        if turn is not None:
            turn.refused += 1
        self.refuse(src, dst or str(to), why)
        options = ", ".join(allowed) if allowed else "none (answer the user yourself)"
        return (
            f"REFUSED: {why}. Allowed handoff targets for {src}: {options}. "
            "Answer the request yourself or hand off to an allowed role."
        )

    def finish(self, src: str, summary: str) -> Finish:
        turn = self.current.get(src)
        if turn is not None and not turn.target:
            turn.action, turn.finished, turn.detail = "finish", True, summary[:80]
        return Finish(summary=summary, reason="finished")


def _response(text: str, like: ModelResponse | None = None) -> ModelResponse:
    return ModelResponse(
        ModelMessage(text),
        tool_calls=ToolCallsEvent([]),
        usage=like.usage if like is not None else Usage(),
        model=like.model if like is not None else None,
        provider=like.provider if like is not None else None,
        finish_reason=like.finish_reason if like is not None else "stop",
    )


def _input_text(event: Any) -> str:
    if isinstance(event, ModelRequest):
        return " ".join(p.content for p in event.parts if isinstance(p, TextInput))
    return ""


def _text(response: ModelResponse) -> str:
    return response.message.content if response.message is not None else ""


class RoleTurn(BaseMiddleware):
    """Per-turn middleware on every role: escalation gate, usage, transcript row."""

    def __init__(self, event: Any, context: Any, *, run: RunState, role: str) -> None:
        super().__init__(event, context)
        self.run = run
        self.role = role
        self.meter = UsageMeter(getattr(run.models.get(role), "model", ""))

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        turn = self.run.current.get(self.role)
        if turn is not None and turn.refused >= MAX_REFUSALS:
            return _response(f"[turn ended after {turn.refused} refused handoffs]")
        return await self.meter.metered(call_next, events, context)

    async def _call(self, turn: _Turn, call_next: Any, event: Any, context: Any) -> ModelResponse:
        try:
            return await call_next(event, context)  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            # The runner closed the channel (its deadline, or the caller went away): not this role's
            # failure, and never shown as a bare ``CancelledError`` — the run's result says why.
            limit = self.run.failure if isinstance(self.run.failure, TimeLimitExceeded) else None
            turn.action = "timeout" if limit else "cancelled"
            turn.detail = (
                f"cut off by the run's {limit.limit_s:g} s time limit (raise timeout_s)"
                if limit
                else "cancelled before it answered (the run was closed)"
            )
            self.run.end(turn, self.meter)
            raise
        except BaseException as exc:
            turn.action, turn.detail = "error", f"{type(exc).__name__}: {exc}"[:120]
            who = "router" if self.role == self.run.graph.router else f"role {self.role!r}"
            self.run.error = f"{who} failed: {type(exc).__name__}: {exc}"
            self.run.failure = exc
            self.run.end(turn, self.meter)
            raise

    async def on_turn(self, call_next: Any, event: Any, context: Any) -> ModelResponse:
        run = self.run
        if self.role == run.graph.router:
            return await self._route(call_next, event, context)
        turn = run.begin(self.role)
        if self.role != run.graph.escalation:
            verdict = await run.gate(self.role, _input_text(event))
            if verdict.action.blocks:
                turn.action, turn.detail = "stopped", verdict.reason
                run.stopped, run.stop_action = f"{self.role}: {verdict.reason}", verdict.action
                run.end(turn, self.meter)
                return _response(f"[stopped by escalation] {verdict.reason}")
        response = await self._call(turn, call_next, event, context)
        turn.text = _text(response)
        if turn.action == "answer":
            turn.detail = " ".join(turn.text.split())[:80]
        run.end(turn, self.meter)
        return response

    def _choose(self, raw: str) -> tuple[str, str, float | None]:
        """The route the router's answer allows (escalation when it is unusable), why, and its confidence."""
        run, graph = self.run, self.run.graph
        try:
            decision = parse_route(raw)
        except RouteParseError as exc:
            return graph.escalation, f"malformed router output → escalation ({exc})", None
        run.decision = decision
        if decision.route not in graph.role_names:
            return graph.escalation, f"unknown route {decision.route!r} → escalation", decision.confidence
        if decision.route not in graph.allowed(graph.router):
            run.refuse(graph.router, decision.route, f"{graph.router!r} may not hand off to {decision.route!r}")
            return graph.escalation, f"route {decision.route!r} not allowed → escalation", decision.confidence
        return decision.route, decision.reason, decision.confidence

    async def _route(self, call_next: Any, event: Any, context: Any) -> ModelResponse:
        run, graph = self.run, self.run.graph
        turn = run.begin(self.role)
        response = await self._call(turn, call_next, event, context)
        route, reason, confidence = self._choose(_text(response))
        verdict = await run.gate(graph.router, run.request, confidence, pending=self.meter)
        if verdict.action is Action.ABORT:
            route, reason = STOP_ROUTE, f"aborted by escalation ({verdict.reason})"
            run.stopped, run.stop_action = f"router: {verdict.reason}", verdict.action
        elif verdict.action.blocks and route != graph.escalation:
            route, reason = graph.escalation, f"escalated ({verdict.reason})"
        turn.action, turn.target = "route", route
        conf = "n/a" if confidence is None else f"{confidence:.2f}"
        turn.detail = f"confidence {conf}: {reason}"[:120]
        run.end(turn, self.meter)
        return _response(route_body(route, reason, run.request), like=response)


def _tools_for(run: RunState, role: str) -> list[Any]:
    graph = run.graph
    targets = "; ".join(f"{d} ({graph.roles[d].description or d})" for d in graph.allowed(role)) or "none"

    async def handoff(to: str, reason: str = "") -> Handoff | str:
        return run.handoff(role, to, reason)

    async def finish(summary: str) -> Finish:
        return run.finish(role, summary)

    return [
        ag2.tool(
            handoff,
            name="handoff",
            description=f"Hand the conversation to another role with a short reason. Allowed targets: {targets}.",
        ),
        ag2.tool(finish, name="finish", description="End the conversation with a one-line summary."),
        *graph.roles[role].tools,
    ]


def build_agent(run: RunState, role: str, config: Any, extra: MiddlewareSpec | None) -> ag2.Agent:
    """The ``ag2.Agent`` for one role of this run (the router gets the route schema and no tools)."""
    graph = run.graph
    # Caller's middleware (telemetry, guardrails, budgets) goes outermost so it sees the whole turn.
    stack = [*extra_middleware(extra, role), Middleware(RoleTurn, run=run, role=role)]
    if role == graph.router:
        return ag2.Agent(
            role, graph.router_prompt(), config=config, middleware=stack, response_schema=graph.route_schema
        )
    return ag2.Agent(role, graph.roles[role].instructions, config=config, tools=_tools_for(run, role), middleware=stack)
