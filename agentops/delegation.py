"""Delegation: a director with specialists, and recursive decomposition with limits and a cost tree.

Two shapes of "an agent hands work to other agents" on AG2 v1's own seams:

* :class:`Team` — **hierarchical**: a director ``ag2.Agent`` whose tools are its specialists exposed
  with ``specialist.as_tool()`` (AG2 subagent tools, the v1 successor of classic nested chats). Each
  specialist has its own instructions and tools; the director's final answer synthesises theirs.
  Several delegations in one model turn run concurrently (AG2 gathers tool calls).
* :class:`Delegator` — **recursive decomposition**: a planner agent splits a task into subtasks
  (answer validated against :class:`Decomposition` through :func:`agentops.jsonparse.parse_json_object`,
  never bare ``json.loads``); each subtask is solved or split again; parents synthesise bottom-up.

What AG2 does not provide and this module adds (hence hand-written): limits on a recursion
(:class:`DelegationLimits`: depth, breadth, total model calls, concurrency), a guard refusing a subtask
that repeats an ancestor or a sibling, failure semantics (a failed leaf is retried when
:func:`agentops.errors.is_retryable` allows, then reported *missing* to its parent's synthesis — never
dropped), one budget pool for a whole tree (:mod:`agentops.budgets`; a blown budget stops the tree,
unfinished nodes are marked and parents return partial results), and the **cost and latency tree**:
every node's own calls, tokens, USD (:func:`agentops.usage.cost_usd`; ``None`` when unpriced) and
latency, rolled up per subtree as totals and along the critical path.

Concurrency: siblings run as asyncio tasks; a semaphore bounds the model calls in flight (it is held only
around a call, never while a parent waits for its children, so a deep tree cannot deadlock). Each run
keeps its state in its own object: one :class:`Delegator` may run many trees at once.

Example::

    tree = Delegator(model_config("offline", seed=0), limits=DelegationLimits(max_depth=2, max_breadth=4))
    run = await tree.run("Plan the product launch")
    run.answer, run.frame(), plot_cost_tree(run)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import ag2
from ag2.events import Usage
from pydantic import BaseModel, Field

from agentops import _identity  # noqa: F401
from agentops.budgets import Budget, BudgetExceeded, BudgetMiddleware, InProcessLedger, Ledger
from agentops.config import Spec
from agentops.errors import ConfigError, EmptyOutputError, MalformedOutputError, is_retryable
from agentops.jsonparse import parse_json_object
from agentops.usage import UsageMeter, cost_usd

__all__ = [
    "NODE_STATUSES",
    "Decomposition",
    "DelegationLimits",
    "DelegationRun",
    "Delegator",
    "Specialist",
    "TaskNode",
    "Team",
    "TeamRun",
    "plot_cost_tree",
]

PLANNER_PROMPT = (
    'You decompose tasks. Reply only with JSON {"subtasks": ["..."]} listing independent subtasks that '
    'together complete the task, or {"subtasks": []} when the task is small enough to do directly.'
)
SOLVER_PROMPT = "You complete one small task well. Answer in at most two sentences."
SYNTHESIZER_PROMPT = (
    "You synthesise subtask results into one answer for the task. Say plainly which results are missing."
)
DIRECTOR_PROMPT = (
    "You are a director. Delegate each part of the request to the matching specialist tool, then "
    "synthesise their answers into one reply."
)

#: What a node's ``status`` may be.
NODE_STATUSES = ("solved", "synthesized", "partial", "failed", "refused", "skipped", "budget", "limit")
_DONE = ("solved", "synthesized", "partial")


class DelegationLimits(Spec):
    """Bounds on a recursive decomposition (all enforced, none advisory)."""

    max_depth: int = Field(2, ge=0, le=8, description="levels below the root that may be split again")
    max_breadth: int = Field(4, ge=1, le=32, description="subtasks kept per split; extras are refused")
    max_calls: int = Field(40, ge=1, le=10_000, description="model calls for the whole tree")
    concurrency: int = Field(4, ge=1, le=256, description="model calls in flight at once")
    retries: int = Field(1, ge=0, le=5, description="extra attempts for a retryable or empty answer")


class Decomposition(BaseModel):
    """The planner's answer: the subtasks of one task (empty: solve it directly)."""

    subtasks: list[str] = Field(default_factory=list)


@dataclass
class TaskNode:
    """One node of a delegation tree: its own work and, through ``children``, its subtree's."""

    id: str
    task: str
    depth: int
    status: str = "skipped"
    result: str | None = None
    reason: str | None = None
    calls: int = 0
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_s: float | None = 0.0
    children: list[TaskNode] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        """This node's own prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def walk(self) -> Iterator[TaskNode]:
        """This node and its descendants, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def subtree(self) -> dict[str, Any]:
        """Roll-up: calls, tokens and USD summed; latency summed and along the critical path.

        USD is ``None`` when any node of the subtree is unpriced (a partial sum would understate it).
        The critical path is this node's own latency plus its slowest child's critical path (siblings
        run in parallel).
        """
        kids = [c.subtree() for c in self.children]
        costs = [self.cost_usd, *(k["cost_usd"] for k in kids)]
        lat = self.latency_s or 0.0
        return {
            "calls": self.calls + sum(k["calls"] for k in kids),
            "tokens": self.tokens + sum(k["tokens"] for k in kids),
            "cost_usd": None if any(c is None for c in costs) else sum(costs),
            "latency_s": lat + sum(k["latency_s"] for k in kids),
            "critical_path_s": lat + max((k["critical_path_s"] for k in kids), default=0.0),
            "critical_path_calls": self.calls + max((k["critical_path_calls"] for k in kids), default=0),
        }

    def _absorb(self, meter: UsageMeter) -> None:
        self.calls = meter.calls
        self.prompt_tokens, self.completion_tokens = meter.prompt_tokens, meter.completion_tokens
        self.cost_usd = None if meter.unpriced_calls else meter.cost_usd


def _frame(root: TaskNode) -> Any:
    import pandas as pd

    rows = []
    parents = {c.id: n.id for n in root.walk() for c in n.children}
    for n in root.walk():
        sub = n.subtree()
        rows.append(
            {
                "node": n.id,
                "parent": parents.get(n.id),
                "depth": n.depth,
                "task": n.task,
                "status": n.status,
                "calls": n.calls,
                "tokens": n.tokens,
                "cost_usd": n.cost_usd,
                "latency_s": n.latency_s,
                **{f"subtree_{k}": v for k, v in sub.items() if not k.startswith("critical")},
                "critical_path_s": sub["critical_path_s"],
                "critical_path_calls": sub["critical_path_calls"],
                "reason": n.reason,
            }
        )
    return pd.DataFrame(rows).set_index("node")


@dataclass
class DelegationRun:
    """The outcome of one tree: the answer, the tree, and why it stopped early (if it did)."""

    task: str
    root: TaskNode
    stopped_by: str | None = None

    @property
    def answer(self) -> str | None:
        """The root's result (partial when ``complete`` is False)."""
        return self.root.result

    @property
    def complete(self) -> bool:
        """True when every node finished and nothing is missing or partial."""
        return all(n.status in ("solved", "synthesized", "refused") for n in self.root.walk())

    @property
    def missing(self) -> list[str]:
        """Tasks whose result did not reach their parent (failed, skipped, over budget or limit)."""
        return [n.task for n in self.root.walk() if n.status not in (*_DONE, "refused")]

    def totals(self) -> dict[str, Any]:
        """The whole tree's roll-up (see :meth:`TaskNode.subtree`)."""
        return self.root.subtree()

    def frame(self) -> Any:
        """One row per node: own and subtree calls, tokens, USD, latency, critical path, status."""
        return _frame(self.root)


class _RunState:
    def __init__(self, limits: DelegationLimits, budget: BudgetMiddleware | None) -> None:
        self.limits = limits
        self.sem = asyncio.Semaphore(limits.concurrency)
        self.calls = 0
        self.stopped_by: str | None = None
        self.middleware = [budget] if budget is not None else []

    def take_call(self) -> bool:
        if self.calls >= self.limits.max_calls:
            return False
        self.calls += 1  # no await between check and increment: atomic under asyncio
        return True


def _key(task: str) -> str:
    return " ".join(task.casefold().split()).rstrip(".")


class Delegator:
    """Recursive decomposition with limits, one budget pool per tree and a cost tree.

    Args:
        config: AG2 ``ModelConfig`` for the planner, solver and synthesiser agents.
        limits: depth, breadth, total calls, concurrency and retries.
        tools: tools the leaf solver may call.
        budgets: caps for the whole tree; each must be ``scope="agent"`` or ``"global"`` (one pool).
        ledger: where budgets are kept; default a fresh :class:`InProcessLedger` per run (per-tree pool).
        max_completion_tokens: the completion part of each budget estimate (your provider's max_tokens).
        name: the tree's name in budget reports.
        clock: monotonic clock used for latencies (inject a simulated one in tests).
    """

    def __init__(
        self,
        config: Any,
        *,
        limits: DelegationLimits | None = None,
        tools: Sequence[Any] = (),
        budgets: Sequence[Budget] = (),
        ledger: Ledger | None = None,
        max_completion_tokens: int = 256,
        name: str = "tree",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if limits is not None and not isinstance(limits, DelegationLimits):
            raise ConfigError("limits must be a DelegationLimits(...), e.g. DelegationLimits(max_depth=2)")
        for b in budgets:
            if not isinstance(b, Budget) or b.scope == "conversation":
                raise ConfigError(
                    f"tree budgets must be Budget(..., scope='agent' or 'global') so the whole tree shares one "
                    f"pool; got {b!r}"
                )
        self.config, self.limits, self.name, self.clock = config, limits or DelegationLimits(), name, clock
        self.budgets, self.ledger, self.max_completion_tokens = tuple(budgets), ledger, max_completion_tokens
        if self.budgets:
            self._budget(InProcessLedger())  # validates prices and caps now, not mid-run
        self.planner = ag2.Agent("planner", PLANNER_PROMPT, config=config)
        self.solver = ag2.Agent("solver", SOLVER_PROMPT, config=config, tools=list(tools))
        self.synthesizer = ag2.Agent("synthesizer", SYNTHESIZER_PROMPT, config=config)

    def _budget(self, ledger: Ledger) -> BudgetMiddleware:
        return BudgetMiddleware(
            ledger,
            agent=self.name,
            budgets=self.budgets,
            model=self.config,
            max_completion_tokens=self.max_completion_tokens,
        )

    async def run(self, task: str) -> DelegationRun:
        """Decompose, solve and synthesise ``task``; never raises for a node's failure (see statuses)."""
        if not isinstance(task, str) or not task.strip():
            raise ConfigError("task must be a non-empty string")
        budget = self._budget(self.ledger or InProcessLedger()) if self.budgets else None
        state = _RunState(self.limits, budget)
        root = TaskNode("0", task.strip(), 0)
        await self._node(root, (), state)
        return DelegationRun(root.task, root, state.stopped_by)

    async def _node(self, node: TaskNode, path: tuple[str, ...], state: _RunState) -> None:
        meter = UsageMeter(getattr(self.config, "model", "") or "")
        try:
            await self._work(node, (*path, _key(node.task)), state, meter)
        finally:
            node._absorb(meter)

    async def _work(self, node: TaskNode, path: tuple[str, ...], state: _RunState, meter: UsageMeter) -> None:
        subtasks: list[str] = []
        if node.depth < state.limits.max_depth:
            text = f"Task: {node.task}\nAt most {state.limits.max_breadth} subtasks."
            answer = await self._call(node, self.planner, text, state, meter)
            if answer is None:
                return
            try:
                subtasks = parse_json_object(answer, Decomposition).subtasks
            except (MalformedOutputError, EmptyOutputError, ConfigError):
                node.reason = "plan unreadable; solved directly"
        if not subtasks:
            answer = await self._call(node, self.solver, node.task, state, meter)
            if answer is not None:
                node.status, node.result = "solved", answer
            return
        node.children = self._children(node, subtasks, path, state.limits.max_breadth)
        runnable = [c for c in node.children if c.status != "refused"]
        await asyncio.gather(*(self._node(c, path, state) for c in runnable))
        await self._synthesise(node, state, meter)

    @staticmethod
    def _children(node: TaskNode, subtasks: list[str], path: tuple[str, ...], breadth: int) -> list[TaskNode]:
        kids, seen = [], set()
        for i, sub in enumerate(s.strip() for s in subtasks):
            child = TaskNode(f"{node.id}.{i + 1}", sub or "(empty)", node.depth + 1)
            k = _key(sub)
            if not k:
                child.status, child.reason = "refused", "empty subtask"
            elif k in path:
                child.status, child.reason = "refused", "cycle: repeats a task on its own path"
            elif k in seen:
                child.status, child.reason = "refused", "duplicate of a sibling"
            elif len(seen) >= breadth:
                child.status, child.reason = "refused", f"over max_breadth={breadth}"
            seen.add(k)
            kids.append(child)
        return kids

    async def _synthesise(self, node: TaskNode, state: _RunState, meter: UsageMeter) -> None:
        lines = []
        for c in node.children:
            if c.status == "refused":
                continue
            shown = c.result if c.status in _DONE else f"[missing: {c.status}: {c.reason}]"
            lines.append(f"- {c.task}: {shown}")
        text = f"Task: {node.task}\n\nResults:\n" + "\n".join(lines)
        answer = await self._call(node, self.synthesizer, text, state, meter)
        if answer is None:  # budget, limit or failure: hand up what the children produced, marked
            node.status, node.result = "partial", "[partial] " + " | ".join(lines)
        else:
            node.status, node.result = "synthesized", answer

    async def _call(
        self, node: TaskNode, agent: ag2.Agent, text: str, state: _RunState, meter: UsageMeter
    ) -> str | None:
        """One model call with retries; on giving up, sets the node's status and returns None."""
        for attempt in range(state.limits.retries + 1):
            async with state.sem:  # checked after waiting: the tree may have stopped meanwhile
                if state.stopped_by:
                    node.status, node.reason = "skipped", f"tree stopped: {state.stopped_by}"
                    return None
                if not state.take_call():
                    node.status, node.reason = "limit", f"max_calls={state.limits.max_calls} reached"
                    return None
                node.attempts += 1
                start = self.clock()
                try:
                    reply = await agent.ask(text, middleware=[*state.middleware, meter.middleware()])
                    body = (reply.body or "").strip()
                    if not body:
                        raise EmptyOutputError(f"{agent.name} returned an empty answer")
                except BudgetExceeded as exc:
                    state.stopped_by = f"budget {exc.budget!r}"
                    node.status, node.reason = "budget", str(exc)
                    return None
                except Exception as exc:  # every failure is recorded on the node
                    node.status, node.reason = "failed", f"{type(exc).__name__}: {exc}"
                    if is_retryable(exc) and attempt < state.limits.retries:
                        continue
                    return None
                finally:
                    node.latency_s = (node.latency_s or 0.0) + self.clock() - start
            if node.status == "failed":  # an earlier attempt failed; this one recovered
                node.status, node.reason = "skipped", f"recovered on attempt {attempt + 1}"
            return body
        return None


# --------------------------------------------------------------------------------------------------
# Hierarchical: a director with specialists as AG2 subagent tools
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Specialist:
    """A specialist the director may delegate to (exposed as the tool ``task_<name>``)."""

    name: str
    instructions: str
    description: str
    tools: tuple[Any, ...] = ()
    config: Any = None


@dataclass
class TeamRun:
    """A director's answer and its cost tree (the director's own calls, then one node per delegation)."""

    answer: str
    root: TaskNode

    def frame(self) -> Any:
        """One row per node (director, then each delegation), with subtree roll-ups."""
        return _frame(self.root)


class _LlmTimer:
    """Middleware factory adding each model call's duration (by ``clock``) to ``totals[name]``."""

    def __init__(self, name: str, totals: dict[str, float], clock: Callable[[], float]) -> None:
        self.name, self.totals, self.clock = name, totals, clock

    def __call__(self, event: Any, context: Any) -> Any:
        from ag2.middleware import BaseMiddleware

        timer = self

        class _Timed(BaseMiddleware):
            async def on_llm_call(self, call_next: Any, events: Any, ctx: Any) -> Any:
                start = timer.clock()
                try:
                    return await call_next(events, ctx)
                finally:
                    timer.totals[timer.name] = timer.totals.get(timer.name, 0.0) + timer.clock() - start

        return _Timed(event, context)


class Team:
    """A director ``ag2.Agent`` whose tools are its specialists (``agent.as_tool()``).

    Args:
        config: the director's model config (and the specialists' unless they set their own).
        specialists: at least one; names must be unique identifiers.
        director_prompt: the director's instructions.
        middleware: AG2 middleware for the director (budgets, telemetry...).
        clock: times each agent's model calls (a node's ``latency_s``); inject a simulated one in tests.

    Not safe for overlapping ``ask`` calls on one Team (latencies are collected per Team); use one Team
    per concurrent request.
    """

    def __init__(
        self,
        config: Any,
        specialists: Sequence[Specialist],
        *,
        director_prompt: str = DIRECTOR_PROMPT,
        middleware: Sequence[Any] = (),
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not specialists:
            raise ConfigError("a Team needs at least one Specialist(name, instructions, description)")
        names = [s.name for s in specialists]
        if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
            raise ConfigError(f"specialist names must be unique identifiers, got {names}")
        self.config = config
        self._latency: dict[str, float] = {}
        self.specialists = {
            s.name: ag2.Agent(
                s.name,
                s.instructions,
                config=s.config or config,
                tools=list(s.tools),
                middleware=[_LlmTimer(s.name, self._latency, clock)],
            )
            for s in specialists
        }
        tools = [self.specialists[s.name].as_tool(description=s.description) for s in specialists]
        timer = _LlmTimer("\0director", self._latency, clock)
        self.director = ag2.Agent(
            "director", director_prompt, config=config, tools=tools, middleware=[*middleware, timer]
        )

    async def ask(self, task: str) -> TeamRun:
        """Run the director on ``task``; the tree has the director's own usage and latency (its model calls)
        and each delegation's."""
        self._latency.clear()
        reply = await self.director.ask(task)
        report = await reply.usage()
        latency = dict(self._latency)
        root = TaskNode("0", task, 0, status="synthesized", result=reply.body, latency_s=latency.get("\0director"))
        own = Usage()
        unpriced = False
        delegations = sorted((r for r in report.records if r.kind == "subtask"), key=lambda r: str(r.label))
        for i, rec in enumerate(delegations):
            name = rec.label or "?"
            child = TaskNode(f"0.{i + 1}", name, 1, status="solved", latency_s=latency.get(name), calls=1)
            child.prompt_tokens = int(rec.usage.prompt_tokens or 0)
            child.completion_tokens = int(rec.usage.completion_tokens or 0)
            child.cost_usd = cost_usd(rec.usage, rec.model, rec.provider)
            root.children.append(child)
        for rec in report.records:
            if rec.kind != "subtask":
                own = own + rec.usage
                root.calls += 1
                unpriced |= cost_usd(rec.usage, rec.model, rec.provider) is None
        root.prompt_tokens, root.completion_tokens = int(own.prompt_tokens or 0), int(own.completion_tokens or 0)
        model = getattr(self.config, "model", None)
        root.cost_usd = None if unpriced else cost_usd(own, model, getattr(self.config, "provider", None))
        return TeamRun(reply.body, root)


# --------------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------------

_COLOURS = {
    "solved": "tab:green",
    "synthesized": "tab:blue",
    "partial": "tab:orange",
    "failed": "tab:red",
    "refused": "tab:gray",
    "skipped": "lightgray",
    "budget": "tab:purple",
    "limit": "tab:brown",
}


def _layout(root: TaskNode) -> dict[str, tuple[float, float]]:
    pos: dict[str, tuple[float, float]] = {}
    next_x = [0.0]

    def place(n: TaskNode) -> float:
        if not n.children:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            xs = [place(c) for c in n.children]
            x = sum(xs) / len(xs)
        pos[n.id] = (x, -float(n.depth))
        return x

    place(root)
    return pos


def plot_cost_tree(run: DelegationRun | TeamRun, ax: Any = None, *, title: str | None = None) -> Any:
    """Draw the tree: nodes coloured by status, sized by subtree tokens, labelled with own USD/latency."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    pos = _layout(run.root)
    biggest = max(1, run.root.subtree()["tokens"])
    for n in run.root.walk():
        for c in n.children:
            _ = ax.plot(*zip(pos[n.id], pos[c.id], strict=True), color="lightgray", zorder=1)
    for status in NODE_STATUSES:
        nodes = [n for n in run.root.walk() if n.status == status]
        if nodes:
            xs, ys = zip(*(pos[n.id] for n in nodes), strict=True)
            sizes = [120 + 900 * n.subtree()["tokens"] / biggest for n in nodes]
            _ = ax.scatter(xs, ys, s=sizes, color=_COLOURS[status], label=status, zorder=2)
    for n in run.root.walk():
        usd = "unpriced" if n.cost_usd is None else f"${n.cost_usd:.5f}"
        lat = "" if n.latency_s is None else f"\n{n.latency_s * 1000:.0f} ms"
        ax.annotate(
            f"{n.id}\n{usd}{lat}",
            pos[n.id],
            xytext=(0, -30),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=7,
        )
    ax.set_title(title or "Delegation tree: own cost and latency per node (size = subtree tokens)")
    ax.set_ylabel("depth (0 = root)")
    ax.set_xlabel("subtasks, left to right")
    ax.set_yticks([-d for d in range(max(n.depth for n in run.root.walk()) + 1)])
    ax.set_yticklabels([str(d) for d in range(max(n.depth for n in run.root.walk()) + 1)])
    ax.set_xticks([])
    ax.margins(x=0.15, y=0.35)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="status", fontsize=8)
    return ax
