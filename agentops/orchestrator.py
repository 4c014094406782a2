"""An orchestrator: a registry of AG2 agents with capabilities and health, selection, workflows by name,
and per-agent statistics gathered through the listener seam.

* :meth:`Orchestrator.register` adds an ``ag2.Agent`` with the capabilities it declares;
  :meth:`Orchestrator.set_status` marks it ``healthy``, ``degraded`` or ``down`` (three failures in a
  row degrade it automatically; a success makes it healthy again).
* :meth:`Orchestrator.select` picks an agent for a capability: never ``down``; healthy before degraded;
  then the best success rate, then the fewest calls in flight, then the name (deterministic).
* :meth:`Orchestrator.ask` routes one request and reports an ``agent.call`` event
  (``{"agent", "capability", "outcome", "latency_s", "tokens", "cost_usd"}``) to every listener
  (:func:`agentops.listeners.notify`). :class:`AgentStats` is such a listener: it keeps calls, success
  rate, latency percentiles and cost per agent, so the same numbers can also feed telemetry.
* :meth:`Orchestrator.run_workflow` runs a chapter 01 :class:`~agentops.workflows.WorkflowTemplate`
  registered by name.

Concurrency: every request keeps its own usage meter and timings (nothing shared between parallel
branches but the counters), and the counters are guarded by a lock — safe under threads and asyncio.
Why hand-written: AG2 v1 has agents and networks but no registry with capabilities, health and
per-agent statistics.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import ag2

from agentops import _identity  # noqa: F401
from agentops.errors import AgentOpsError, ConfigError, TimeLimitExceeded
from agentops.listeners import AGENT_CALL, Listener, notify
from agentops.usage import UsageMeter
from agentops.workflows import WorkflowRun, WorkflowTemplate, run_workflow

__all__ = ["AGENT_CALL", "AgentStats", "NoCapableAgent", "Orchestrator", "Reply"]

Status = Literal["healthy", "degraded", "down"]
_RANK = {"healthy": 0, "degraded": 1}
_DEGRADE_AFTER = 3


class NoCapableAgent(AgentOpsError, LookupError):
    """No registered agent that is not down declares the capability asked for."""


@dataclass(frozen=True)
class Reply:
    """One routed request: which agent answered, what, and what it cost."""

    agent: str
    capability: str
    text: str
    tokens: int
    cost_usd: float | None


@dataclass
class _Entry:
    agent: ag2.Agent
    capabilities: frozenset[str]
    description: str
    status: str = "healthy"
    in_flight: int = 0
    failures_in_row: int = 0


class AgentStats:
    """A listener keeping per-agent calls, successes, latencies and cost (thread- and asyncio-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}

    def __call__(self, kind: str, payload: Mapping[str, Any]) -> None:
        if kind != AGENT_CALL:
            return
        with self._lock:
            row = self._rows.setdefault(
                payload["agent"], {"calls": 0, "ok": 0, "latency": [], "cost": 0.0, "tokens": 0, "unpriced": 0}
            )
            row["calls"] += 1
            row["ok"] += payload["outcome"] == "ok"
            row["latency"].append(float(payload["latency_s"]))
            row["tokens"] += int(payload.get("tokens") or 0)
            if payload.get("cost_usd") is None:
                row["unpriced"] += 1 if payload.get("tokens") else 0
            else:
                row["cost"] += payload["cost_usd"]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per agent: calls, success_rate, p50_s, p95_s, tokens, cost_usd (None when a call was unpriced)."""
        import numpy as np

        with self._lock:
            rows = {k: {**v, "latency": list(v["latency"])} for k, v in self._rows.items()}
        out = {}
        for name, r in sorted(rows.items()):
            lat = np.asarray(r["latency"])
            out[name] = {
                "calls": r["calls"],
                "success_rate": r["ok"] / r["calls"],
                "p50_s": float(np.percentile(lat, 50)),
                "p95_s": float(np.percentile(lat, 95)),
                "tokens": r["tokens"],
                "cost_usd": None if r["unpriced"] else r["cost"],
            }
        return out


async def _within(turn: Any, timeout_s: float | None, name: str, cap: str) -> Any:
    """Await an agent's turn for at most ``timeout_s``; our own limit becomes :class:`TimeLimitExceeded`."""
    if timeout_s is None:
        return await turn
    try:
        return await asyncio.wait_for(turn, timeout_s)
    except asyncio.TimeoutError as exc:  # the builtin TimeoutError from Python 3.11 on
        if not isinstance(exc.__cause__, asyncio.CancelledError):
            raise  # the provider's own timeout, not ours
        where = f"agent {name!r} (capability {cap!r})"
        raise TimeLimitExceeded(where, timeout_s, "timeout_s of Orchestrator.ask") from None


@dataclass
class Orchestrator:
    """Registry, selection, routing, workflows by name and statistics (see the module docstring).

    Args:
        listeners: receive ``agent.call`` events (an :class:`AgentStats` is added as ``.stats``).
        clock: monotonic clock for latencies (inject a simulated one in tests).
    """

    listeners: Sequence[Listener] = ()
    clock: Callable[[], float] = time.perf_counter
    stats: AgentStats = field(default_factory=AgentStats)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._agents: dict[str, _Entry] = {}
        self._workflows: dict[str, WorkflowTemplate] = {}
        self._listeners = (self.stats, *self.listeners)

    # -- registry --------------------------------------------------------------------------------
    def register(self, agent: ag2.Agent, capabilities: Sequence[str], *, description: str = "") -> None:
        """Add ``agent`` (by its name) with the capabilities it declares."""
        if not isinstance(agent, ag2.Agent):
            raise ConfigError("register() takes an ag2.Agent")
        caps = frozenset(c.strip().lower() for c in capabilities if c and c.strip())
        if not caps:
            raise ConfigError(f"agent {agent.name!r} declares no capabilities; pass e.g. ['billing']")
        with self._lock:
            if agent.name in self._agents:
                raise ConfigError(f"an agent named {agent.name!r} is already registered; names must be unique")
            self._agents[agent.name] = _Entry(agent, caps, description)

    def set_status(self, name: str, status: Status) -> None:
        """Mark an agent ``healthy``, ``degraded`` or ``down`` (down agents are never selected)."""
        if status not in ("healthy", "degraded", "down"):
            raise ConfigError(f"status must be healthy, degraded or down, got {status!r}")
        with self._lock:
            self._entry(name).status = status

    def _entry(self, name: str) -> _Entry:
        if name not in self._agents:
            raise ConfigError(f"no agent named {name!r}; registered: {sorted(self._agents)}")
        return self._agents[name]

    def select(self, capability: str) -> str:
        """The name of the agent to use for ``capability`` (see the module docstring for the order)."""
        cap = capability.strip().lower()
        summary = self.stats.summary()
        with self._lock:
            return self._pick(cap, summary)

    def _pick(self, cap: str, summary: Mapping[str, Any]) -> str:
        able = [(n, e) for n, e in self._agents.items() if cap in e.capabilities and e.status != "down"]
        if not able:
            known = sorted({c for e in self._agents.values() for c in e.capabilities})
            raise NoCapableAgent(
                f"no available agent has capability {cap!r}; known capabilities: {known} "
                "(register one, or set a down agent back to healthy)"
            )

        def rank(item: tuple[str, _Entry]) -> tuple[Any, ...]:
            name, e = item
            return (_RANK[e.status], -summary.get(name, {}).get("success_rate", 1.0), e.in_flight, name)

        return min(able, key=rank)[0]

    # -- routing ---------------------------------------------------------------------------------
    async def ask(self, capability: str, text: str, *, timeout_s: float | None = None) -> Reply:
        """Route ``text`` to an agent with ``capability``; the call is reported to the listeners.

        Args:
            capability: what the agent must be able to do.
            text: the request.
            timeout_s: time limit of the agent's turn (``None``: none); past it the turn is cancelled,
                reported as an error, and :class:`~agentops.errors.TimeLimitExceeded` names the agent,
                the limit and ``timeout_s``.
        """
        if timeout_s is not None and not timeout_s > 0:
            raise ConfigError(f"timeout_s must be > 0 seconds or None, got {timeout_s!r}")
        cap = capability.strip().lower()
        summary = self.stats.summary()
        with self._lock:
            name = self._pick(cap, summary)
            entry = self._agents[name]
            entry.in_flight += 1
        meter = UsageMeter(getattr(entry.agent, "name", ""))
        start, outcome = self.clock(), "error"
        try:
            reply = await _within(entry.agent.ask(text, middleware=[meter.middleware()]), timeout_s, name, cap)
            outcome = "ok"
            return Reply(name, cap, reply.body or "", meter.tokens, None if meter.unpriced_calls else meter.cost_usd)
        finally:
            self._finish(entry, name, cap, outcome, self.clock() - start, meter)

    def _finish(self, entry: _Entry, name: str, cap: str, outcome: str, latency: float, meter: UsageMeter) -> None:
        with self._lock:
            entry.in_flight -= 1
            entry.failures_in_row = 0 if outcome == "ok" else entry.failures_in_row + 1
            if outcome == "ok" and entry.status == "degraded":
                entry.status = "healthy"
            elif entry.failures_in_row >= _DEGRADE_AFTER and entry.status == "healthy":
                entry.status = "degraded"
        payload = {
            "agent": name,
            "capability": cap,
            "outcome": outcome,
            "latency_s": latency,
            "tokens": meter.tokens,
            "cost_usd": None if meter.unpriced_calls else meter.cost_usd,
        }
        notify(self._listeners, AGENT_CALL, payload)

    # -- workflows -------------------------------------------------------------------------------
    def register_workflow(self, template: WorkflowTemplate | Mapping[str, Any]) -> str:
        """Register a chapter 01 workflow template under its name; returns the name."""
        t = template if isinstance(template, WorkflowTemplate) else WorkflowTemplate.from_dict(dict(template))
        with self._lock:
            if t.name in self._workflows:
                raise ConfigError(f"a workflow named {t.name!r} is already registered")
            self._workflows[t.name] = t
        return t.name

    async def run_workflow(self, name: str, request: str, *, models: Any, **options: Any) -> WorkflowRun:
        """Run the workflow registered as ``name`` (options go to :func:`agentops.workflows.run_workflow`)."""
        with self._lock:
            if name not in self._workflows:
                raise ConfigError(f"no workflow named {name!r}; registered: {sorted(self._workflows)}")
            template = self._workflows[name]
        return await run_workflow(template, request, models=models, listeners=self.listeners, **options)

    # -- reporting -------------------------------------------------------------------------------
    def status_table(self) -> Any:
        """One row per agent: capabilities, status, in flight, calls, success rate, p50/p95 latency, cost."""
        import pandas as pd

        summary = self.stats.summary()
        with self._lock:
            entries = [(n, sorted(e.capabilities), e.status, e.in_flight) for n, e in self._agents.items()]
        rows = []
        for name, caps, status, in_flight in sorted(entries):
            s = summary.get(name, {})
            rows.append(
                {
                    "agent": name,
                    "capabilities": ", ".join(caps),
                    "status": status,
                    "in_flight": in_flight,
                    "calls": s.get("calls", 0),
                    "success_rate": s.get("success_rate"),
                    "p50_ms": None if not s else s["p50_s"] * 1000,
                    "p95_ms": None if not s else s["p95_s"] * 1000,
                    "tokens": s.get("tokens", 0),
                    "cost_usd": s.get("cost_usd", 0.0),
                }
            )
        return pd.DataFrame(rows).set_index("agent")
