"""Running a role graph as a real ``ag2.network`` workflow, and what a run returns.

Each run opens an in-process ``Hub``, registers one ``ag2.Agent`` per role (``attach_plugin=False``,
so AG2's generic ``delegate`` tool cannot route around the graph), and opens a ``workflow`` channel
whose ``TransitionGraph`` sends the request to the router and the router's packet to the role it
chose. A turn that raises inside a channel is only logged by the hub and the channel keeps waiting,
so the runner watches for failures and for its deadline and closes the channel itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ag2
from ag2.knowledge import MemoryKnowledgeStore
from ag2.network import AgentTarget, FromSpeaker, Hub, TerminateTarget, Transition, TransitionGraph

from agentops import _identity  # noqa: F401
from agentops._ag2 import network_log_capture
from agentops.errors import ConfigError, TimeLimitExceeded
from agentops.escalation import Action, EscalationEngine, low_confidence
from agentops.graph._turns import TRANSCRIPT_COLUMNS, RunState, build_agent
from agentops.graph.routing import RouteDecision, RouterTarget, ensure_router_target
from agentops.listeners import Listener
from agentops.stack import MiddlewareSpec

if TYPE_CHECKING:
    from agentops.graph.roles import RoleGraph

__all__ = ["GraphRun", "run_graph", "runs_frame"]

_POLL_S = 0.005


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
        tokens: total over every model call of the run.
        cost_usd: USD over every model call, or ``None`` when a call used a model without a known
            price (see :mod:`agentops.usage`; its tokens are still counted).
        error: what failed, for ``error``/``timeout`` (a timeout's message names the role that was
            answering, the limit and ``timeout_s``).
        failure: the exception behind ``error``: a role's own error, or
            :class:`~agentops.errors.TimeLimitExceeded` when the run's deadline passed.
        network_log: ``ag2.network`` log lines captured during the run.
        unpriced_calls: model calls whose model has no known price.
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
    cost_usd: float | None
    error: str = ""
    network_log: tuple[str, ...] = field(default=(), repr=False)
    unpriced_calls: int = 0
    failure: BaseException | None = field(default=None, repr=False)

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
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
        }


def runs_frame(runs: Iterable[GraphRun]) -> Any:
    """A pandas DataFrame with one :meth:`GraphRun.summary` row per run."""
    import pandas as pd

    return pd.DataFrame([r.summary() for r in runs])


def _models(graph: RoleGraph, request: Any, model: Any, timeout_s: float) -> dict[str, Any]:
    if not isinstance(request, str) or not request.strip():
        raise ConfigError("request must be a non-empty string")
    models = {n: r.model if r.model is not None else model for n, r in graph.roles.items()}
    missing = [n for n, m in models.items() if m is None]
    if missing:
        raise ConfigError(f"role(s) {missing} have no model: pass model=model_config(...) or set Role(model=...)")
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s must be > 0, got {timeout_s!r}")
    return models


async def run_graph(
    graph: RoleGraph,
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

    This is :meth:`RoleGraph.run` (``await graph.run(request, ...)``).

    Args:
        graph: the role graph (``self`` when called as ``graph.run``).
        request: the requester's message.
        model: AG2 ``ModelConfig`` for roles that do not declare their own.
        escalation: the engine checked before routing and before each role speaks; by default
            ``EscalationEngine([low_confidence(confidence_threshold)])`` with no approver, so a
            router below the threshold sends the request to the escalation role.
        confidence_threshold: used only by the default engine.
        listeners: called with ``(HANDOFF_REFUSED, {"from", "to", "reason"})``.
        timeout_s: wall-clock limit for the whole run (status ``timeout`` when hit; ``error`` then says
            which role was answering, and ``failure`` is a :class:`~agentops.errors.TimeLimitExceeded`).
        run_id: defaults to ``<graph name>-<n>``.
        middleware: extra AG2 middleware for every role's agent — a list, or a function of the
            role name such as ``Telemetry.middleware`` — placed outermost.

    Raises:
        ConfigError: empty request, or a role without a model when ``model`` is not given.
    """
    models = _models(graph, request, model, timeout_s)
    engine = escalation if escalation is not None else EscalationEngine([low_confidence(confidence_threshold)])
    run = RunState(graph, run_id or graph.next_run_id(), request, engine, listeners, models)
    sink: list[str] = []
    with network_log_capture(sink):
        close_reason, error = await _drive(run, models, middleware, timeout_s)
    return _result(run, close_reason, error, sink)


async def _drive(
    run: RunState, models: Mapping[str, Any], middleware: MiddlewareSpec | None, timeout_s: float
) -> tuple[str, str]:
    """Open a hub, run the workflow channel to its end (or the deadline), close the hub."""
    ensure_router_target()
    hub = await Hub.open(MemoryKnowledgeStore(), expectation_sweep_interval=0, ttl_sweep_interval=0)
    try:
        channel = await _open_channel(hub, run, models, middleware)
        await channel.send(run.request)
        return await _wait(channel, run, timeout_s)
    finally:
        await hub.close()


async def _open_channel(hub: Any, run: RunState, models: Mapping[str, Any], middleware: MiddlewareSpec | None) -> Any:
    graph = run.graph
    user = await hub.register(ag2.Agent("user"), attach_plugin=False)
    ids = {"user": user.agent_id}
    for role in graph.roles:
        client = await hub.register(build_agent(run, role, models[role], middleware), attach_plugin=False)
        ids[role] = client.agent_id
    table = {r: ids[r] for r in graph.roles}
    transitions = TransitionGraph(
        initial_speaker=ids["user"],
        transitions=[
            Transition(when=FromSpeaker(ids["user"]), then=AgentTarget(ids[graph.router])),
            Transition(when=FromSpeaker(ids[graph.router]), then=RouterTarget(table, ids[graph.escalation])),
        ],
        default_target=TerminateTarget(reason="answered"),
        max_turns=graph.max_turns,
    )
    return await user.open(type="workflow", target=list(graph.roles), knobs={"graph": transitions.to_dict()})


async def _wait(channel: Any, run: RunState, timeout_s: float) -> tuple[str, str]:
    """Poll the channel until it closes, a turn failed, or the deadline passed: ``(close reason, error)``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s  # the event loop's clock, like every asyncio timeout
    while True:
        info = await channel.info()
        if info.is_terminal():
            return info.close_reason or "", ""
        if run.error:
            await channel.close(reason="error")
            return "error", run.error
        if loop.time() > deadline:
            run.failure = _too_slow(run, timeout_s)  # set first: the turns it cuts off report it
            await channel.close(reason="timeout")
            return "timeout", str(run.failure)
        await asyncio.sleep(_POLL_S)


def _too_slow(run: RunState, timeout_s: float) -> TimeLimitExceeded:
    answering = run.answering()
    during = f"while {', '.join(repr(r) for r in answering)} was answering" if answering else ""
    return TimeLimitExceeded(f"graph run {run.run_id!r}", timeout_s, "timeout_s of RoleGraph.run", during)


def _status(run: RunState, close_reason: str) -> str:
    if close_reason in ("error", "timeout"):
        return close_reason
    if close_reason == "aborted" or run.stop_action is Action.ABORT:
        return "aborted"
    if run.stopped:
        return "stopped"
    if close_reason in ("max_turns", "finished"):
        return close_reason
    return "escalated" if run.graph.escalation in run.path else "answered"


def _result(run: RunState, close_reason: str, error: str, sink: list[str]) -> GraphRun:
    import pandas as pd

    status = _status(run, close_reason)
    spoken = [t for t in run.turns if t.text]
    return GraphRun(
        run_id=run.run_id,
        request=run.request,
        status=status,
        route=run.decision,
        path=tuple(run.path),
        answer=spoken[-1].text if spoken else "",
        transcript=pd.DataFrame(run.rows, columns=TRANSCRIPT_COLUMNS).set_index("step"),
        refusals=tuple(run.refusals),
        escalations=run.engine.log(run.run_id),
        tokens=run.tokens,
        cost_usd=None if run.unpriced_calls else run.cost,
        error=error or (run.error if status == "error" else ""),
        network_log=tuple(sink),
        unpriced_calls=run.unpriced_calls,
        failure=run.failure if status in ("error", "timeout") else None,
    )
