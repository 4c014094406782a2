"""Role graphs: AG2 agents organised by role, run as an ``ag2.network`` workflow with enforced edges.

Declare roles (name, instructions, tools, model) and the handoffs allowed between them; a
:class:`RoleGraph` checks the declaration (unknown roles, edges to undefined roles, roles nobody can
reach are errors) and runs each request as a real ``ag2.network`` workflow — an in-process ``Hub``, a
``TransitionGraph`` and one ``ag2.Agent`` per role — so nothing about the orchestration is simulated.

What the helper adds on top of AG2:

* **Enforced edges.** ``ag2.network`` does not check a tool's ``Handoff`` against the transition
  graph, so every role gets a ``handoff(to, reason)`` tool that does: an illegal target gets a clear
  refusal string the model reads (never an exception, which would put a traceback into the model's
  context), the refusal is recorded in the transcript and sent to listeners as ``handoff.refused``,
  and the target never speaks. Roles are registered with ``attach_plugin=False`` so AG2's generic
  ``delegate`` tool cannot route around the graph.
* **A router with a validated answer.** The router role answers with JSON matching
  :class:`RouteDecision` (``route``, ``reason``, ``confidence``; also passed to AG2 as
  ``response_schema`` so real providers use structured output). :func:`parse_route` finds the JSON
  inside prose or code fences and validates it with pydantic. Malformed output, an unknown or
  disallowed route, or an escalation verdict (low confidence by default) sends the request to the
  escalation role. The router never crashes the run.
* **Escalation as it runs.** Before the router's choice is followed and before every other role
  speaks, the run is checked by an :class:`~agentops.escalation.EscalationEngine` (cost so far,
  confidence, sensitive data, error rate...). ``stop`` sends the request to the escalation role (or
  ends the run if it is already past routing), ``abort`` ends it.
* **A transcript** (:attr:`GraphRun.transcript`, a pandas DataFrame with step, role, action, target,
  tokens, cost) in stable role names, never AG2's random agent ids, and :func:`draw_graph` to draw
  roles, allowed edges and the path a run took.

Example::

    graph = RoleGraph(
        [Role("router", "You are a router."), Role("billing", "You handle billing."),
         Role("escalation", "You hand over to a person.")],
        edges={"router": ["billing", "escalation"], "billing": ["escalation"]},
    )
    run = await graph.run("I was charged twice", model=model_config("offline"))
    run.transcript

The network's own log lines (turn failures, rejected posts) are captured into
:attr:`GraphRun.network_log` instead of going to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import ag2
from ag2.events import ModelMessage, ModelRequest, ModelResponse, TextInput, ToolCallsEvent, Usage
from ag2.knowledge import MemoryKnowledgeStore
from ag2.middleware import BaseMiddleware, Middleware
from ag2.network import (
    AgentTarget,
    Finish,
    FromSpeaker,
    Handoff,
    Hub,
    TerminateTarget,
    Transition,
    TransitionDecision,
    TransitionGraph,
    register_target,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from agentops import _identity  # noqa: F401
from agentops.errors import AgentOpsError, ConfigError
from agentops.escalation import Action, EscalationEngine, RunContext, low_confidence
from agentops.listeners import HANDOFF_REFUSED, Listener, notify
from agentops.pricing import cost as usd_cost

__all__ = [
    "MAX_REFUSALS",
    "GraphError",
    "GraphRun",
    "MiddlewareSpec",
    "Role",
    "RoleGraph",
    "RouteDecision",
    "RouteParseError",
    "UsageMeter",
    "draw_graph",
    "extra_middleware",
    "network_quiet",
    "parse_route",
    "runs_frame",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_RESERVED = frozenset({"user"})
STOP_ROUTE = "__stop__"
MAX_REFUSALS = 3
"""Refused handoffs after which a role's turn is ended (a model that keeps retrying cannot loop)."""
TRANSCRIPT_COLUMNS = ["step", "role", "action", "target", "tokens", "cost", "detail"]


class GraphError(ConfigError):
    """The role graph declaration is invalid; the message names the role or edge and the fix."""


class RouteParseError(AgentOpsError):
    """The router's answer holds no valid :class:`RouteDecision`."""


# --------------------------------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------------------------------


class Role(BaseModel):
    """One role: a stable name, its instructions, its tools and (optionally) its own model.

    Args:
        name: lowercase identifier (``billing``, ``tech_support``); becomes the AG2 agent's name.
        instructions: the role's system prompt.
        description: one line the router and the ``handoff`` tool show for this role.
        tools: extra AG2 tools (plain callables or ``@ag2.tool`` objects).
        model: an AG2 ``ModelConfig`` for this role; roles without one use the run's model.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    name: str
    instructions: str
    description: str = ""
    tools: tuple[Any, ...] = ()
    model: Any = None

    def __init__(self, name: str, instructions: str = "", **data: Any) -> None:
        super().__init__(name=name, instructions=instructions, **data)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not _NAME.match(v or ""):
            raise ValueError(f"role name {v!r} must be lowercase letters, digits and _ (start with a letter)")
        if v in _RESERVED:
            raise ValueError(f"role name {v!r} is reserved for the requester; pick another")
        return v


class RouteDecision(BaseModel):
    """The router's answer: where to send the request, why, and how sure it is."""

    model_config = ConfigDict(extra="ignore")

    route: str = Field(min_length=1)
    reason: str = ""
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("route")
    @classmethod
    def _normalise(cls, v: str) -> str:
        return v.strip().lower()


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _json_objects(text: str) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        for i, ch in enumerate(chunk):
            if ch != "{":
                continue
            try:
                obj, _ = decoder.raw_decode(chunk, i)
            except ValueError:
                continue
            yield obj


def parse_route(text: str | None, routes: Iterable[str] | None = None) -> RouteDecision:
    """Extract and validate a :class:`RouteDecision` from a model's answer.

    Tolerates prose around the JSON and Markdown code fences; takes the first JSON object that
    validates. With ``routes``, the route must be one of them.

    Raises:
        RouteParseError: no JSON object, no object that validates, or a route outside ``routes``.
    """
    if not text or not text.strip():
        raise RouteParseError("the router returned no text")
    allowed = None if routes is None else {r.lower() for r in routes}
    problems: list[str] = []
    for obj in _json_objects(text):
        if not isinstance(obj, dict):
            continue
        try:
            decision = RouteDecision.model_validate(obj)
        except ValidationError as exc:
            problems.append("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
            continue
        if allowed is not None and decision.route not in allowed:
            problems.append(f"route {decision.route!r} is not one of {sorted(allowed)}")
            continue
        return decision
    if problems:
        raise RouteParseError(f"router answer did not validate ({problems[0]})")
    snippet = " ".join(text.split())[:60]
    raise RouteParseError(f"no JSON object in the router answer {snippet!r}")


# --------------------------------------------------------------------------------------------------
# Quiet network logs (stderr breaks notebooks; keep the lines on the run instead)
# --------------------------------------------------------------------------------------------------

_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: tuple[bool, int] | None = None


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@contextlib.contextmanager
def network_quiet(sink: list[str] | None = None) -> Iterator[list[str]]:
    """Keep ``ag2.network`` log records off stderr while the block runs, collecting them in ``sink``.

    Re-entrant and safe for concurrent runs (the logger is restored when the last one exits).
    """
    global _quiet_depth, _quiet_saved
    sink = [] if sink is None else sink
    net = logging.getLogger("ag2.network")
    handler = _Collect(sink)
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = (net.propagate, net.level)
            net.propagate = False
            net.setLevel(logging.WARNING)
        _quiet_depth += 1
        net.addHandler(handler)
    try:
        yield sink
    finally:
        with _quiet_lock:
            net.removeHandler(handler)
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                net.propagate, level = _quiet_saved
                net.setLevel(level)


# --------------------------------------------------------------------------------------------------
# The network target that follows the router's (already validated) decision
# --------------------------------------------------------------------------------------------------

_ROUTE_LINE = re.compile(r"^\[route → ([a-z][a-z0-9_]*|__stop__)\]")


@dataclass(slots=True)
class RouterTarget:
    """``ag2.network`` transition target: the role named on the router packet's first line.

    The router middleware writes ``[route → <role>]`` after validating the model's answer, so this
    resolver stays pure (no I/O), as AG2 requires; anything else goes to ``fallback``.
    """

    table: dict[str, str]
    fallback: str
    name: ClassVar[str] = "agentops_router"

    def resolve(self, state: Any, envelope: Any) -> TransitionDecision:
        body = envelope.event_data.get("body", "") if hasattr(envelope, "event_data") else ""
        match = _ROUTE_LINE.match(body if isinstance(body, str) else "")
        route = match.group(1) if match else None
        if route == STOP_ROUTE:
            return TransitionDecision(next_speaker=None, close_reason="aborted")
        return TransitionDecision(next_speaker=self.table.get(route or "", self.fallback))


register_target(RouterTarget)


MiddlewareSpec = Sequence[Any] | Callable[[str], Sequence[Any]]
"""Extra AG2 middleware for the agents a graph or workflow builds: one list for every agent, or a
function of the role/stage name returning that agent's list (e.g. ``telemetry.middleware``)."""


def extra_middleware(spec: MiddlewareSpec | None, name: str) -> list[Any]:
    """Resolve a :data:`MiddlewareSpec` for the agent called ``name``.

    Raises:
        ConfigError: the spec is neither a list/tuple of factories nor a function of the name.
    """
    if spec is None:
        return []
    if isinstance(spec, (list, tuple)):
        return list(spec)
    if callable(spec):
        return list(spec(name))
    raise ConfigError(
        f"middleware must be a list of AG2 middleware factories or a function role -> list; got {type(spec).__name__}"
    )


# --------------------------------------------------------------------------------------------------
# Usage metering (AG2 middleware) — shared with agentops.workflows
# --------------------------------------------------------------------------------------------------


class UsageMeter:
    """Thread- and asyncio-safe tally of model calls, tokens and USD cost, fed by AG2 middleware.

    ``Middleware(UsageMeter.Hook, meter=meter)`` (see :meth:`middleware`) adds every LLM call's
    ``Usage`` to the meter, including calls of attempts that later fail, and counts failed calls.
    Cost comes from :func:`agentops.pricing.cost` for the model the provider reported (or the
    config's model name when the provider reports none).
    """

    def __init__(self, model_name: str = "") -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self.calls = 0
        self.errors = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Usage | None, model: str | None, provider: str | None) -> float:
        """Record one call's usage; returns its cost."""
        usage = usage or Usage()
        name = model or self.model_name
        spent = usd_cost(usage, name, provider) if (usage.prompt_tokens or usage.completion_tokens) else 0.0
        with self._lock:
            self.calls += 1
            self.prompt_tokens += int(usage.prompt_tokens or 0)
            self.completion_tokens += int(usage.completion_tokens or 0)
            self.cost_usd += spent
        return spent

    async def metered(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        """Run one LLM call through ``call_next`` and record its usage (or its failure)."""
        try:
            response = await call_next(events, context)
        except BaseException:
            self.fail()
            raise
        self.add(response.usage, response.model, response.provider)
        return response

    def fail(self) -> None:
        """Count a call that raised."""
        with self._lock:
            self.calls += 1
            self.errors += 1

    def middleware(self) -> Middleware:
        """An AG2 middleware factory feeding this meter."""
        return Middleware(_MeterHook, meter=self)


class _MeterHook(BaseMiddleware):
    def __init__(self, event: Any, context: Any, *, meter: UsageMeter) -> None:
        super().__init__(event, context)
        self.meter = meter

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        return await self.meter.metered(call_next, events, context)


# --------------------------------------------------------------------------------------------------
# One run's bookkeeping
# --------------------------------------------------------------------------------------------------


@dataclass
class _Turn:
    step: int
    role: str
    action: str = "answer"
    target: str = ""
    tokens: int = 0
    cost: float = 0.0
    detail: str = ""
    text: str = ""
    finished: bool = False
    refused: int = 0


class _Run:
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
        self.graph = graph
        self.run_id = run_id
        self.request = request
        self.engine = engine
        self.listeners = tuple(listeners)
        self.models = models
        self.rows: list[dict[str, Any]] = [
            {
                "step": 1,
                "role": "user",
                "action": "request",
                "target": graph.router,
                "tokens": 0,
                "cost": 0.0,
                "detail": " ".join(request.split())[:80],
            }
        ]
        self.turns: list[_Turn] = []
        self.current: dict[str, _Turn] = {}
        self.path: list[str] = []
        self.refusals: list[dict[str, str]] = []
        self.decision: RouteDecision | None = None
        self.stopped = ""
        self.stop_action: Action | None = None
        self.error = ""
        self.tokens = 0
        self.cost = 0.0
        self.calls = 0
        self.errors = 0
        self.started = time.perf_counter()
        self.listener_errors = 0

    def _next_step(self) -> int:
        return len(self.rows) + 1

    def begin(self, role: str) -> _Turn:
        turn = _Turn(self._next_step(), role)
        self.turns.append(turn)
        self.current[role] = turn
        self.path.append(role)
        return turn

    def end(self, turn: _Turn, meter: UsageMeter) -> None:
        turn.tokens = meter.tokens
        turn.cost = meter.cost_usd
        self.tokens += meter.tokens
        self.cost += meter.cost_usd
        self.calls += meter.calls
        self.errors += meter.errors
        self.rows.append(
            {
                "step": self._next_step(),
                "role": turn.role,
                "action": turn.action,
                "target": turn.target,
                "tokens": turn.tokens,
                "cost": turn.cost,
                "detail": turn.detail,
            }
        )

    def refuse(self, src: str, dst: str, reason: str) -> None:
        self.refusals.append({"from": src, "to": dst, "reason": reason})
        self.rows.append(
            {
                "step": self._next_step(),
                "role": src,
                "action": "handoff.refused",
                "target": dst,
                "tokens": 0,
                "cost": 0.0,
                "detail": reason,
            }
        )
        self.listener_errors += notify(
            self.listeners, HANDOFF_REFUSED, {"from": src, "to": dst, "reason": reason}
        )

    async def gate(
        self, where: str, text: str, confidence: float | None = None, pending: UsageMeter | None = None
    ) -> Any:
        """Check the escalation engine; ``pending`` is the current turn's usage not yet booked."""
        extra_tokens = pending.tokens if pending else 0
        extra_cost = pending.cost_usd if pending else 0.0
        ctx = RunContext(
            run_id=self.run_id,
            where=where,
            text=text,
            confidence=confidence,
            cost_usd=self.cost + extra_cost,
            tokens=self.tokens + extra_tokens,
            calls=self.calls + (pending.calls if pending else 0),
            errors=self.errors + (pending.errors if pending else 0),
            elapsed_s=time.perf_counter() - self.started,
            model=getattr(self.models.get(where), "model", ""),
        )
        return await self.engine.check(ctx)

    # -- tools -------------------------------------------------------------------------------
    def handoff(self, src: str, to: str, reason: str) -> Handoff | str:
        dst = (to or "").strip().lower()
        allowed = self.graph.allowed(src)
        if dst not in self.graph.role_names:
            why = f"there is no role named {to!r}"
        elif dst not in allowed:
            why = f"{src!r} may not hand off to {dst!r}"
        else:
            turn = self.current.get(src)
            if turn is not None and not turn.target:
                turn.action, turn.target, turn.detail = "handoff", dst, reason
            return Handoff(target=dst, reason=reason)
        options = ", ".join(allowed) if allowed else "none (answer the user yourself)"
        turn = self.current.get(src)
        if turn is not None:
            turn.refused += 1
        self.refuse(src, dst or str(to), why)
        return (
            f"REFUSED: {why}. Allowed handoff targets for {src}: {options}. "
            "Answer the request yourself or hand off to an allowed role."
        )

    def finish(self, src: str, summary: str) -> Finish:
        turn = self.current.get(src)
        if turn is not None and not turn.target:
            turn.action, turn.finished, turn.detail = "finish", True, summary[:80]
        return Finish(summary=summary, reason="finished")


def _response(text: str, model: str = "", provider: str = "") -> ModelResponse:
    return ModelResponse(
        ModelMessage(text),
        tool_calls=ToolCallsEvent([]),
        usage=Usage(),
        model=model or None,
        provider=provider or None,
        finish_reason="stop",
    )


def _input_text(event: Any) -> str:
    if isinstance(event, ModelRequest):
        return " ".join(p.content for p in event.parts if isinstance(p, TextInput))
    return ""


class _RoleTurn(BaseMiddleware):
    """Per-turn middleware on every role: escalation gate, usage, transcript row."""

    def __init__(self, event: Any, context: Any, *, run: _Run, role: str) -> None:
        super().__init__(event, context)
        self.run = run
        self.role = role
        self.meter = UsageMeter(getattr(run.models.get(role), "model", ""))

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        turn = self.run.current.get(self.role)
        if turn is not None and turn.refused >= MAX_REFUSALS:
            return _response(f"[turn ended after {turn.refused} refused handoffs]")
        return await self.meter.metered(call_next, events, context)

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
        try:
            response = await call_next(event, context)
        except BaseException as exc:
            turn.action, turn.detail = "error", f"{type(exc).__name__}: {exc}"[:120]
            run.error = f"role {self.role!r} failed: {type(exc).__name__}: {exc}"
            run.end(turn, self.meter)
            raise
        turn.text = response.message.content if response.message is not None else ""
        if turn.action == "answer":
            turn.detail = " ".join(turn.text.split())[:80]
        run.end(turn, self.meter)
        return response

    async def _route(self, call_next: Any, event: Any, context: Any) -> ModelResponse:
        run, graph = self.run, self.run.graph
        turn = run.begin(self.role)
        try:
            response = await call_next(event, context)
        except BaseException as exc:
            turn.action, turn.detail = "error", f"{type(exc).__name__}: {exc}"[:120]
            run.error = f"router failed: {type(exc).__name__}: {exc}"
            run.end(turn, self.meter)
            raise
        raw = response.message.content if response.message is not None else ""
        route, reason, confidence = graph.escalation, "", None
        try:
            decision = parse_route(raw)
        except RouteParseError as exc:
            reason = f"malformed router output → escalation ({exc})"
        else:
            run.decision = decision
            confidence = decision.confidence
            if decision.route not in graph.role_names:
                reason = f"unknown route {decision.route!r} → escalation"
            elif decision.route not in graph.allowed(graph.router):
                run.refuse(
                    graph.router, decision.route, f"{graph.router!r} may not hand off to {decision.route!r}"
                )
                reason = f"route {decision.route!r} not allowed → escalation"
            else:
                route, reason = decision.route, decision.reason
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
        body = f"[route → {route}] {reason}\n\nRequest: {run.request}"
        return ModelResponse(
            ModelMessage(body),
            tool_calls=ToolCallsEvent([]),
            usage=response.usage,
            model=response.model,
            provider=response.provider,
            finish_reason=response.finish_reason,
        )


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class GraphRun:
    """The outcome of :meth:`RoleGraph.run`.

    Attributes:
        run_id: deterministic id (``<graph name>-<n>``).
        request: the request text.
        status: ``answered``, ``finished``, ``escalated``, ``stopped``, ``aborted``, ``max_turns``,
            ``error`` or ``timeout``.
        route: the router's validated decision (``None`` if its answer was unusable).
        path: roles that spoke, in order.
        answer: the last role's text.
        transcript: DataFrame with step, role, action, target, tokens, cost, detail.
        refusals: refused handoffs as ``{"from", "to", "reason"}``.
        escalations: this run's rows of the escalation log.
        tokens / cost_usd: totals over every model call of the run.
        error: what failed, for ``error``/``timeout``.
        network_log: ``ag2.network`` log lines captured during the run.
    """

    run_id: str
    request: str
    status: str
    route: RouteDecision | None
    path: tuple[str, ...]
    answer: str
    transcript: Any
    refusals: tuple[dict[str, str], ...]
    escalations: Any
    tokens: int
    cost_usd: float
    error: str = ""
    network_log: tuple[str, ...] = field(default=(), repr=False)

    def summary(self) -> dict[str, Any]:
        """One row describing the run."""
        return {
            "request": " ".join(self.request.split())[:48],
            "route": self.route.route if self.route else "(invalid)",
            "confidence": round(self.route.confidence, 2) if self.route else None,
            "path": " → ".join(self.path),
            "status": self.status,
            "refused": len(self.refusals),
            "escalations": len(self.escalations),
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


def runs_frame(runs: Iterable[GraphRun]) -> Any:
    """A pandas DataFrame with one :meth:`GraphRun.summary` row per run."""
    import pandas as pd

    return pd.DataFrame([r.summary() for r in runs])


# --------------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------------


def _edge_pairs(edges: Mapping[str, Sequence[str]] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(edges, Mapping):
        pairs = []
        for src, dsts in edges.items():
            if isinstance(dsts, str):
                raise GraphError(f"edges[{src!r}] must be a list of role names, got the string {dsts!r}")
            pairs.extend((src, d) for d in dsts)
        return pairs
    pairs = []
    for item in edges:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise GraphError(f"an edge must be a (from, to) pair, got {item!r}")
        pairs.append((item[0], item[1]))
    return pairs


class RoleGraph:
    """Roles plus the handoffs allowed between them, validated when declared.

    Args:
        roles: the roles (unique names).
        edges: allowed handoffs, ``{"router": ["billing", "escalation"], ...}`` or ``(from, to)`` pairs.
        router: name of the role that classifies each request (it answers with a
            :class:`RouteDecision`; it has no tools).
        escalation: name of the role that takes what the graph cannot handle; the router must be
            allowed to reach it.
        name: used in run ids.
        max_turns: cap on turns per run (AG2 closes the channel at the cap).

    Raises:
        GraphError: duplicate or unknown role names, edges to undefined roles, self-edges, a router
            without an edge to the escalation role, a router with tools, or unreachable roles.
    """

    def __init__(
        self,
        roles: Sequence[Role],
        edges: Mapping[str, Sequence[str]] | Iterable[tuple[str, str]],
        *,
        router: str = "router",
        escalation: str = "escalation",
        name: str = "graph",
        max_turns: int = 12,
    ) -> None:
        roles = list(roles)
        if not roles:
            raise GraphError("a role graph needs at least a router and an escalation role")
        for r in roles:
            if not isinstance(r, Role):
                raise GraphError(f"roles must be Role objects, got {type(r).__name__}")
        names = [r.name for r in roles]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise GraphError(f"duplicate role name(s) {dupes}; each role needs a unique name")
        defined = ", ".join(names)
        for label, value in (("router", router), ("escalation", escalation)):
            if value not in names:
                raise GraphError(f"{label} role {value!r} is not defined; defined roles: {defined}")
        if router == escalation:
            raise GraphError("the router and the escalation role must be different roles")
        pairs = _edge_pairs(edges)
        for src, dst in pairs:
            for end in (src, dst):
                if end not in names:
                    raise GraphError(
                        f"edge {src!r} → {dst!r} names undefined role {end!r}; defined roles: {defined}"
                    )
            if src == dst:
                raise GraphError(f"edge {src!r} → {dst!r} is a self-loop; a role cannot hand off to itself")
        self.roles: dict[str, Role] = {r.name: r for r in roles}
        self.router = router
        self.escalation = escalation
        self.name = name
        if not isinstance(max_turns, int) or max_turns < 2:
            raise GraphError(f"max_turns must be an int ≥ 2, got {max_turns!r}")
        self.max_turns = max_turns
        self._edges: dict[str, tuple[str, ...]] = {n: () for n in names}
        for src, dst in pairs:
            if dst not in self._edges[src]:
                self._edges[src] = (*self._edges[src], dst)
        if escalation not in self._edges[router]:
            raise GraphError(
                f"the router {router!r} must be allowed to hand off to the escalation role {escalation!r}; "
                f"add it to edges[{router!r}]"
            )
        if self.roles[router].tools:
            raise GraphError(
                f"the router {router!r} answers with a route and takes no tools; move them to a role"
            )
        reachable = self._reachable(router)
        unreachable = [n for n in names if n not in reachable]
        if unreachable:
            raise GraphError(
                f"role(s) {unreachable} cannot be reached from {router!r}; add an edge to them or remove them"
            )
        self._counter = itertools.count(1)

    # -- introspection -------------------------------------------------------------------------
    def _reachable(self, start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in self._edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    @property
    def role_names(self) -> tuple[str, ...]:
        """Role names in declaration order."""
        return tuple(self.roles)

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """Allowed handoffs as ``(from, to)`` pairs."""
        return tuple((s, d) for s, ds in self._edges.items() for d in ds)

    def allowed(self, role: str) -> tuple[str, ...]:
        """Roles ``role`` may hand off to (raises :class:`GraphError` for an unknown role)."""
        if role not in self._edges:
            raise GraphError(f"unknown role {role!r}; defined roles: {', '.join(self.roles)}")
        return self._edges[role]

    def is_allowed(self, src: str, dst: str) -> bool:
        """True if ``src`` may hand off to ``dst``."""
        return src in self._edges and dst in self._edges[src]

    def frame(self) -> Any:
        """Roles with their allowed handoffs as a pandas DataFrame."""
        import pandas as pd

        rows = [
            {
                "role": n,
                "kind": self._kind(n),
                "may hand off to": ", ".join(self._edges[n]) or "—",
                "description": r.description,
            }
            for n, r in self.roles.items()
        ]
        return pd.DataFrame(rows).set_index("role")

    def _kind(self, name: str) -> str:
        return "router" if name == self.router else "escalation" if name == self.escalation else "role"

    @property
    def route_schema(self) -> type[BaseModel]:
        """A pydantic model like :class:`RouteDecision` whose ``route`` is limited to the router's edges
        (passed to the router agent as AG2 ``response_schema``)."""
        routes = self._edges[self.router]
        return create_model(  # type: ignore[call-overload, no-any-return]
            "RouteDecision",
            route=(Literal[routes], Field(description="the role that should handle the request")),
            reason=(str, Field(description="one short sentence")),
            confidence=(float, Field(ge=0.0, le=1.0, description="how sure you are, 0..1")),
        )

    def router_prompt(self) -> str:
        """The router's instructions plus the list of routes and the answer format."""
        lines = [self.roles[self.router].instructions.strip(), "", "Routes:"]
        for dst in self._edges[self.router]:
            desc = self.roles[dst].description or self.roles[dst].instructions.split(".")[0]
            lines.append(f"- {dst}: {desc}")
        lines += [
            "",
            'Answer only with JSON: {"route": "<one of the routes>", "reason": "<short>", '
            '"confidence": <0..1>}.',
        ]
        return "\n".join(lines).strip()

    # -- building AG2 agents -------------------------------------------------------------------
    def _tools_for(self, run: _Run, role: str) -> list[Any]:
        allowed = self._edges[role]
        targets = "; ".join(f"{d} ({self.roles[d].description or d})" for d in allowed) or "none"

        async def handoff(to: str, reason: str = "") -> Handoff | str:
            return run.handoff(role, to, reason)

        async def finish(summary: str) -> Finish:
            return run.finish(role, summary)

        return [
            ag2.tool(
                handoff,
                name="handoff",
                description=(
                    f"Hand the conversation to another role with a short reason. Allowed targets: {targets}."
                ),
            ),
            ag2.tool(finish, name="finish", description="End the conversation with a one-line summary."),
            *self.roles[role].tools,
        ]

    def _agent(self, run: _Run, role: str, config: Any, extra: MiddlewareSpec | None) -> ag2.Agent:
        # Caller's middleware (telemetry, guardrails, budgets) goes outermost so it sees the whole turn.
        stack = [*extra_middleware(extra, role), Middleware(_RoleTurn, run=run, role=role)]
        if role == self.router:
            return ag2.Agent(
                role,
                self.router_prompt(),
                config=config,
                middleware=stack,
                response_schema=self.route_schema,
            )
        return ag2.Agent(
            role,
            self.roles[role].instructions,
            config=config,
            tools=self._tools_for(run, role),
            middleware=stack,
        )

    # -- running -------------------------------------------------------------------------------
    async def run(
        self,
        request: str,
        *,
        model: Any = None,
        escalation: EscalationEngine | None = None,
        confidence_threshold: float = 0.6,
        listeners: Sequence[Listener] = (),
        timeout_s: float = 60.0,
        run_id: str | None = None,
        middleware: MiddlewareSpec | None = None,
    ) -> GraphRun:
        """Route one request through the graph as an ``ag2.network`` workflow and return the result.

        Args:
            request: the requester's message.
            model: AG2 ``ModelConfig`` for roles that do not declare their own.
            escalation: the engine checked before routing and before each role speaks; by default
                ``EscalationEngine([low_confidence(confidence_threshold)])`` with no approver, so a
                router below the threshold sends the request to the escalation role.
            confidence_threshold: used only by the default engine.
            listeners: called with ``(HANDOFF_REFUSED, {"from", "to", "reason"})``.
            timeout_s: wall-clock limit for the whole run (status ``timeout`` when hit).
            run_id: defaults to ``<graph name>-<n>``.
            middleware: extra AG2 middleware for every role's agent — a list, or a function of the
                role name such as ``Telemetry.middleware`` — placed outermost.

        Raises:
            ConfigError: empty request, or a role without a model when ``model`` is not given.
        """
        if not isinstance(request, str) or not request.strip():
            raise ConfigError("request must be a non-empty string")
        models = {n: r.model if r.model is not None else model for n, r in self.roles.items()}
        missing = [n for n, m in models.items() if m is None]
        if missing:
            raise ConfigError(
                f"role(s) {missing} have no model: pass model=model_config(...) or set Role(model=...)"
            )
        if timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0, got {timeout_s!r}")
        engine = (
            escalation if escalation is not None else EscalationEngine([low_confidence(confidence_threshold)])
        )
        run_id = run_id or f"{self.name}-{next(self._counter)}"
        run = _Run(self, run_id, request, engine, listeners, models)
        sink: list[str] = []
        close_reason, status_error = "", ""
        with network_quiet(sink):
            hub = await Hub.open(MemoryKnowledgeStore(), expectation_sweep_interval=0, ttl_sweep_interval=0)
            try:
                user = await hub.register(ag2.Agent("user"), attach_plugin=False)
                ids = {"user": user.agent_id}
                for role in self.roles:
                    client = await hub.register(self._agent(run, role, models[role], middleware), attach_plugin=False)
                    ids[role] = client.agent_id
                table = {r: ids[r] for r in self.roles}
                graph = TransitionGraph(
                    initial_speaker=ids["user"],
                    transitions=[
                        Transition(when=FromSpeaker(ids["user"]), then=AgentTarget(ids[self.router])),
                        Transition(
                            when=FromSpeaker(ids[self.router]),
                            then=RouterTarget(table, ids[self.escalation]),
                        ),
                    ],
                    default_target=TerminateTarget(reason="answered"),
                    max_turns=self.max_turns,
                )
                channel = await user.open(
                    type="workflow", target=list(self.roles), knobs={"graph": graph.to_dict()}
                )
                await channel.send(request)
                deadline = time.perf_counter() + timeout_s
                while True:
                    info = await channel.info()
                    if info.is_terminal():
                        close_reason = info.close_reason or ""
                        break
                    if run.error:
                        await channel.close(reason="error")
                        close_reason, status_error = "error", run.error
                        break
                    if time.perf_counter() > deadline:
                        await channel.close(reason="timeout")
                        close_reason = "timeout"
                        status_error = (
                            f"run exceeded {timeout_s:g} s; raise timeout_s or check the roles' models"
                        )
                        break
                    await asyncio.sleep(0.005)
            finally:
                await hub.close()
        return self._result(run, close_reason, status_error, sink)

    def _result(self, run: _Run, close_reason: str, error: str, sink: list[str]) -> GraphRun:
        import pandas as pd

        if close_reason in ("error", "timeout"):
            status = close_reason
        elif close_reason == "aborted" or run.stop_action is Action.ABORT:
            status = "aborted"
        elif run.stopped:
            status = "stopped"
        elif close_reason == "max_turns":
            status = "max_turns"
        elif close_reason == "finished":
            status = "finished"
        elif self.escalation in run.path:
            status = "escalated"
        else:
            status = "answered"
        transcript = pd.DataFrame(run.rows, columns=TRANSCRIPT_COLUMNS).set_index("step")
        spoken = [t for t in run.turns if t.text]
        answer = spoken[-1].text if spoken else ""
        return GraphRun(
            run_id=run.run_id,
            request=run.request,
            status=status,
            route=run.decision,
            path=tuple(run.path),
            answer=answer,
            transcript=transcript,
            refusals=tuple(run.refusals),
            escalations=run.engine.log(run.run_id),
            tokens=run.tokens,
            cost_usd=run.cost,
            error=error or (run.error if status == "error" else ""),
            network_log=tuple(sink),
        )

    def __repr__(self) -> str:
        return f"RoleGraph(name={self.name!r}, roles={list(self.roles)}, edges={len(self.edges)})"


# --------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------


def _layers(graph: RoleGraph) -> dict[str, int]:
    depth = {graph.router: 0}
    frontier = [graph.router]
    while frontier:
        nxt = []
        for src in frontier:
            for dst in graph.allowed(src):
                if dst not in depth:
                    depth[dst] = depth[src] + 1
                    nxt.append(dst)
        frontier = nxt
    return depth


def draw_graph(
    graph: RoleGraph, run: GraphRun | None = None, ax: Any = None, title: str | None = None
) -> Any:
    """Draw roles (nodes), allowed handoffs (grey arrows) and, for a run, the path taken (red) and any
    refused handoff attempts (dashed). Returns the matplotlib ``Axes``."""
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(graph.role_names)
    g.add_edges_from(graph.edges)
    depth = _layers(graph)
    by_layer: dict[int, list[str]] = {}
    for n in graph.role_names:
        by_layer.setdefault(depth.get(n, 0), []).append(n)
    pos = {}
    for layer, members in by_layer.items():
        for i, n in enumerate(members):
            pos[n] = (layer, (len(members) - 1) / 2 - i)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    visited = set(run.path) if run else set()
    colors = []
    for n in graph.role_names:
        base = "#9ecae1" if n == graph.router else "#fdae6b" if n == graph.escalation else "#d9d9d9"
        colors.append("#e6550d" if n in visited and n != graph.router and n != graph.escalation else base)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, node_size=1900, edgecolors="#444444")
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=9)
    nx.draw_networkx_edges(
        g,
        pos,
        ax=ax,
        edge_color="#bbbbbb",
        arrows=True,
        arrowsize=14,
        node_size=1900,
        connectionstyle="arc3,rad=0.08",
    )
    if run is not None:
        taken = [(a, b) for a, b in itertools.pairwise(run.path) if g.has_edge(a, b)]
        nx.draw_networkx_edges(
            g,
            pos,
            edgelist=taken,
            ax=ax,
            edge_color="#d62728",
            width=3,
            arrows=True,
            arrowsize=18,
            node_size=1900,
            connectionstyle="arc3,rad=0.08",
        )
        refused = [(r["from"], r["to"]) for r in run.refusals if r["to"] in pos]
        if refused:
            h = nx.DiGraph()
            h.add_edges_from(refused)
            nx.draw_networkx_edges(
                h,
                pos,
                edgelist=refused,
                ax=ax,
                edge_color="#d62728",
                style="dashed",
                width=1.5,
                arrows=True,
                arrowsize=12,
                node_size=1900,
                connectionstyle="arc3,rad=-0.25",
            )
    ax.set_title(
        title or (f"{graph.name}: path {' → '.join(run.path)}" if run else f"{graph.name}: allowed handoffs")
    )
    ax.set_xlabel("handoff depth from the router")
    ax.set_xticks(sorted(by_layer))
    ax.tick_params(left=False, labelleft=False, bottom=True, labelbottom=True)
    ax.margins(0.15)
    return ax
