"""The chaos drill of chapter 07: a support agent with a side-effecting tool, under injected HTTP faults.

Every request asks the agent to open a ticket for one order; the tool ``open_ticket`` has a side effect
(a ticket is counted), so a request that runs it twice is visible. Requests go through the real AG2
OpenAI client to :class:`~agentops.resilience.FaultServer`\\ s (the offline model, or a real provider
behind the fault proxy), a bounded number at a time, from a caller that retries a request that raised —
as a queue worker or a load balancer would. :func:`drive` sends the load and :func:`collect` returns a
:class:`DrillResult`: answered correctly (the ticket id in the answer, not truncated, not degraded),
raised, wrong answers returned as success, duplicated side effects, latency, retries, degraded answers.

:func:`build_agents` builds the two stacks of ``benchmarks/chaos.py`` (chapter 07 builds the same ones step
by step): AG2's defaults (``OpenAIConfig`` as shipped: the SDK's two retries, its 10-minute timeout) and
the resilient stack (:class:`~agentops.resilience.FallbackModel` with retries, breakers, a bulkhead and
a cache; the tool made at-most-once by an :class:`~agentops.resilience.IdempotencyLedger`).

:func:`run_outage` sends one request per simulated second while servers go down and come back, and
:func:`plot_timeline` draws circuit states, the step that answered and health over that time.

The offline rules live here (:func:`drill_model`: tickets through a tool, four FAQ answers) and print
with ``drill_model().rules_frame()``.
"""

from __future__ import annotations

import asyncio
import math
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ag2
from ag2.events import BaseEvent, ModelResponse
from ag2.middleware import BaseMiddleware

from agentops import _identity  # noqa: F401
from agentops.models import OfflineModel, Prompt, rule, tool_rule
from agentops.resilience.breaker import Breakers, BreakerSettings
from agentops.resilience.fallback import AnswerCache, FallbackModel, is_degraded, served_by
from agentops.resilience.health import HealthMonitor
from agentops.resilience.idempotency import IdempotencyLedger
from agentops.resilience.retries import RetryPolicy
from agentops.resilience.validation import InputGuard

__all__ = [
    "FAQ",
    "FAQ_PROMPT",
    "SUPPORT_PROMPT",
    "CallCounter",
    "DrillResult",
    "EventLog",
    "Outage",
    "Outcome",
    "TicketDesk",
    "build_agents",
    "collect",
    "drill_model",
    "drive",
    "plot_timeline",
    "question",
    "run_outage",
    "ticket_id",
]

SUPPORT_PROMPT = (
    "You are a support agent. When a customer asks for a ticket, call open_ticket with the order number, "
    "then confirm the ticket id in one sentence."
)
FAQ_PROMPT = "You are a support agent. Answer questions about our shop in one sentence."
FAQ: dict[str, str] = {
    "returns": "You can return any item within 30 days for a full refund.",
    "shipping": "Standard shipping takes 3 to 5 business days.",
    "warranty": "Every product carries a two-year warranty.",
    "payment": "We accept cards, bank transfers and gift vouchers.",
}
_ORDER = re.compile(r"order (\d+)")


def question(i: int) -> str:
    """The drill's request number ``i``: a ticket for order ``1000 + i``."""
    return f"Please open a ticket for order {1000 + i}: the parcel arrived damaged."


def ticket_id(order: int) -> str:
    """The id ``open_ticket`` gives the ticket of ``order``."""
    return f"TCK-{order:05d}"


def _order_of(p: Prompt) -> dict[str, Any]:
    found = _ORDER.search(p.user)
    return {"order_id": int(found.group(1)) if found else 0}


def _faq_answer(p: Prompt) -> str:
    topic = next(t for t in FAQ if p.mentions(t))
    return FAQ[topic]


def _asks_faq(p: Prompt) -> bool:
    """user asks about returns, shipping, warranty or payment"""
    return not p.after_tools and p.mentions(*FAQ)


def drill_model(seed: int = 0) -> OfflineModel:
    """The offline support model: asked for a ticket, it calls ``open_ticket`` and then reports the result;
    asked about returns, shipping, warranty or payment, it answers from :data:`FAQ`."""
    ticket = tool_rule("open_ticket", keywords=["ticket"], arguments=_order_of)
    faq = rule("answer the FAQ", _faq_answer, when=_asks_faq, description="user asks about a shop topic → its answer")
    return OfflineModel(seed=seed, sleep=False, rules=[ticket, faq])


class TicketDesk:
    """The side effect: tickets opened per order (thread-safe); :meth:`tool` is the AG2 tool function."""

    def __init__(self) -> None:
        self.opened: Counter[int] = Counter()
        self._lock = threading.Lock()

    def tool(self) -> Callable[[int], Awaitable[str]]:
        """``open_ticket(order_id)``: opens a ticket (counted) and returns its id."""
        desk = self

        async def open_ticket(order_id: int) -> str:
            """Open a support ticket for an order and return the ticket id."""
            with desk._lock:
                desk.opened[order_id] += 1
            return f"ticket {ticket_id(order_id)} opened for order {order_id}"

        return open_ticket

    @property
    def duplicates(self) -> int:
        """Tickets opened more than once for the same order (extra ones)."""
        with self._lock:
            return sum(n - 1 for n in self.opened.values() if n > 1)


class CallCounter:
    """AG2 middleware factory counting the model calls an agent makes (before any retry layer below it)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        counter = self

        class _Count(BaseMiddleware):
            async def on_llm_call(self, call_next: Any, events: Any, ctx: Any) -> ModelResponse:
                with counter._lock:
                    counter.calls += 1
                return await call_next(events, ctx)

        return _Count(event, context)


class EventLog:
    """A listener keeping every ``(kind, payload)`` it hears (thread-safe)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, payload: Any) -> None:
        with self._lock:
            self.events.append((kind, dict(payload)))

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Payloads of one kind, in order."""
        with self._lock:
            return [p for k, p in self.events if k == kind]


@dataclass(frozen=True)
class Outcome:
    """One request as the caller saw it."""

    request: int
    correct: bool
    raised: bool
    degraded: bool
    served_by: str | None
    latency_s: float
    attempts: int
    error: str = ""


@dataclass
class DrillResult:
    """What a drill measured for one stack."""

    stack: str
    outcomes: list[Outcome]
    duplicates: int
    http_requests: int
    model_calls: int
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The drill's numbers: rates in %, latency in seconds."""
        n = len(self.outcomes) or 1
        latencies = sorted(o.latency_s for o in self.outcomes)
        correct = sum(o.correct for o in self.outcomes)
        raised = sum(o.raised for o in self.outcomes)
        return {
            "stack": self.stack,
            "requests": len(self.outcomes),
            "answered correctly %": 100 * correct / n,
            "raised %": 100 * raised / n,
            "wrong answer returned as success %": 100 * (n - correct - raised) / n,
            "duplicated side effects": self.duplicates,
            "degraded answers": sum(o.degraded for o in self.outcomes),
            "caller retries": sum(o.attempts - 1 for o in self.outcomes),
            "model-call retries": self.http_requests - self.model_calls,
            "p50 latency s": statistics.median(latencies) if latencies else 0.0,
            "p95 latency s": latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)] if latencies else 0.0,
        }


def build_agents(
    primary: Any,
    secondary: Any,
    desk: TicketDesk,
    *,
    counter: CallCounter | None = None,
    listeners: Iterable[Any] = (),
    breaker: BreakerSettings | None = None,
    retry: RetryPolicy | None = None,
    seed: int = 0,
) -> dict[str, ag2.Agent]:
    """The two stacks: ``"ag2"`` (``primary`` as given) and ``"resilient"`` (both models in a chain).

    ``primary``/``secondary`` are the resilient stack's configs (SDK retries off, a per-attempt
    timeout); the AG2-defaults agent gets ``primary`` with the SDK's own retry and timeout defaults.
    """
    from openai import DEFAULT_MAX_RETRIES, not_given

    counted = [counter] if counter else []
    defaults = primary.copy(max_retries=DEFAULT_MAX_RETRIES, timeout=not_given)
    plain = ag2.Agent("support", SUPPORT_PROMPT, config=defaults, tools=[desk.tool()], middleware=counted)
    listeners = tuple(listeners)
    ledger = IdempotencyLedger()
    settings = {"max_attempts": 4, "base_s": 0.05, "max_backoff_s": 0.5, "retry_after_cap_s": 2, "deadline_s": 20}
    retry = retry or RetryPolicy(seed=seed, listeners=listeners, **settings)
    chain = FallbackModel(
        primary,
        secondary,
        retry=retry,
        breakers=Breakers(breaker or BreakerSettings(failure_threshold=8, reset_timeout_s=5), listeners=listeners),
        bulkhead=32,
        bulkhead_wait_s=5.0,
        cache=AnswerCache(),
        listeners=listeners,
    )
    tool = ag2.tool(desk.tool(), middleware=[ledger.once()])
    guard = InputGuard(agent="support", listeners=listeners)
    resilient = ag2.Agent(
        "support", SUPPORT_PROMPT, config=chain, tools=[tool], middleware=[guard, HealthMonitor(), *counted]
    )
    return {"ag2": plain, "resilient": resilient}


async def drive(
    agent: ag2.Agent,
    requests: Sequence[int],
    *,
    expected: Callable[[int], str] = lambda i: ticket_id(1000 + i),
    ask: Callable[[int], str] = question,
    concurrency: int = 20,
    caller_retries: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Outcome]:
    """Send ``requests`` (indices) through ``agent``, ``concurrency`` at a time; a request that raised is
    sent again up to ``caller_retries`` times with the same idempotency key."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Outcome:
        async with gate:
            started, error, reply, attempt = clock(), "", None, 0
            while reply is None and attempt <= caller_retries:
                attempt += 1
                try:
                    reply = await agent.ask(ask(i), variables={"idempotency_key": f"req-{i}"})
                except Exception as exc:  # the caller's view: the request failed
                    error = type(exc).__name__
            latency = clock() - started
            if reply is None:
                return Outcome(i, False, True, False, None, latency, attempt, error)
            correct = expected(i) in (reply.body or "") and reply.response.finish_reason != "length"
            degraded = is_degraded(reply)
            return Outcome(i, correct and not degraded, False, degraded, served_by(reply), latency, attempt, error)

    return list(await asyncio.gather(*(one(i) for i in requests)))


def collect(
    stack: str, outcomes: list[Outcome], desk: TicketDesk, servers: Iterable[Any], counter: CallCounter, wall_s: float
) -> DrillResult:
    """A :class:`DrillResult` from what :func:`drive` returned and what the servers and the desk saw."""
    http = sum(s.stats.requests for s in servers)
    return DrillResult(stack, outcomes, desk.duplicates, http, counter.calls, wall_s)


# --------------------------------------------------------------------------------------------------
# An outage, request by request, on a simulated clock
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outage:
    """Servers (by label) answering 5xx to everything from ``start`` to ``end`` (seconds, end excluded)."""

    start: float
    end: float
    down: tuple[str, ...]


async def run_outage(
    agent: ag2.Agent,
    servers: Mapping[str, Any],
    outages: Sequence[Outage],
    *,
    clock: Any,
    breakers: Breakers,
    monitor: HealthMonitor,
    requests: int,
    ask: Callable[[int], str],
    every_s: float = 1.0,
) -> Any:
    """One request every ``every_s`` simulated seconds through ``agent`` while ``outages`` come and go.

    Returns a pandas DataFrame, one row per request: time, servers down, which step answered, whether
    degraded, each circuit's state and the health verdict afterwards.
    """
    import pandas as pd

    from agentops.resilience.server import HTTPFaults

    rows = []
    for i in range(requests):
        t = round(clock.advance_to(i * every_s), 2)
        down = {label for o in outages if o.start <= t < o.end for label in o.down}
        for label, server in servers.items():
            server.set_faults(HTTPFaults(server_error=1.0) if label in down else HTTPFaults())
        reply = await agent.ask(ask(i))
        health = monitor.check(breakers.states())
        rows.append(
            {
                "t": t,
                "down": ", ".join(sorted(down)) or "-",
                "served by": served_by(reply),
                "degraded": is_degraded(reply),
                **{f"circuit {name}": state for name, state in breakers.states().items()},
                "health": health.status,
                "reasons": "; ".join(health.reasons),
            }
        )
    return pd.DataFrame(rows)


_STATE_LEVEL = {"closed": 0, "half_open": 1, "open": 2}


def plot_timeline(frame: Any, breakers: Breakers, outages: Sequence[Outage], *, title: str = "") -> Any:
    """Three stacked panels over simulated time: circuit states, the step that answered, health."""
    import matplotlib.pyplot as plt

    fig, (ax_c, ax_s, ax_h) = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True, height_ratios=[2, 2, 1.2])
    end = float(frame["t"].max()) + 1
    for name in breakers.states():
        points = [(0.0, 0)] + [(tr.at, _STATE_LEVEL[tr.target]) for tr in breakers.transitions() if tr.breaker == name]
        xs, ys = [p[0] for p in points] + [end], [p[1] for p in points] + [points[-1][1]]
        _ = ax_c.step(xs, ys, where="post", label=name, linewidth=2)
    ax_c.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
    ax_c.set_ylabel("circuit")
    steps = list(dict.fromkeys([*breakers.states(), "cache", "canned"]))
    for k, step in enumerate(steps):
        hits = frame[frame["served by"] == step]
        _ = ax_s.scatter(hits["t"], [k] * len(hits), s=28, label=f"answered by {step}")
    ax_s.set_yticks(range(len(steps)), steps)
    ax_s.set_ylabel("answered by")
    levels = {"healthy": 0, "degraded": 1, "unhealthy": 2}
    _ = ax_h.step(frame["t"], frame["health"].map(levels), where="post", color="black", label="health")
    ax_h.set_yticks([0, 1, 2], list(levels))
    ax_h.set_xlabel("simulated time (s), one request per second")
    for ax in (ax_c, ax_s, ax_h):
        for o in outages:
            ax.axvspan(o.start, o.end, alpha=0.12, color="red" if len(o.down) > 1 else "orange", linewidth=0)
        ax.set_ylim(-0.5, max(2, len(ax.get_yticks()) - 1) + 0.5)
    for o in outages:
        _ = ax_c.axvspan(
            o.start,
            o.start,
            alpha=0.12,
            color="red" if len(o.down) > 1 else "orange",
            label=f"down: {', '.join(o.down)}",
        )
    ax_c.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax_s.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax_c.set_title(title or "Circuit breakers, fallback order and health through an outage")
    fig.tight_layout()
    return fig
