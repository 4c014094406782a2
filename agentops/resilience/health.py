"""Health checks: liveness and readiness from breaker states, the recent error rate and latency.

A health check answers two different questions, and mixing them up turns a provider outage into a
restart storm:

* **liveness** — is this process able to serve at all? It does not look at dependencies: restarting
  a worker because the model provider is down fixes nothing and loses every request in flight.
* **readiness** — should traffic be sent here now? It is ``False`` while the service is
  ``unhealthy``: every model's circuit is open, or most recent calls fail.

:class:`HealthMonitor` is an AG2 middleware factory that records every model call's outcome and
latency on an injectable clock (and whether the answer was degraded), and :meth:`HealthMonitor.check`
turns the recent window plus the breaker states into a :class:`Health`: ``healthy``, ``degraded`` or
``unhealthy`` with the reasons. :class:`HealthRules` holds the thresholds; :meth:`HealthRules.from_slos`
derives them from chapter 04's SLOs (the availability SLO's error budget, the latency SLO's bound).
:func:`health_routes` exposes ``/healthz`` and ``/readyz`` on any Starlette app.

Why hand-written: the health-check libraries on PyPI run checks (ping a database, call a URL); none
combines breaker states with a sliding window of call outcomes, which is what an agent service needs.

Thread and asyncio safety: :meth:`HealthMonitor.record` and :meth:`HealthMonitor.check` take a lock.

Example::

    monitor = HealthMonitor(HealthRules.from_slos())
    agent = ag2.Agent("support", "...", config=model, middleware=[monitor])
    monitor.check(breakers.states()).status   # 'healthy'
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ag2.events import BaseEvent, ModelResponse
from ag2.middleware import BaseMiddleware
from pydantic import Field, model_validator

from agentops import _identity  # noqa: F401
from agentops.config import Spec

__all__ = ["Health", "HealthMonitor", "HealthRules", "Status", "health_routes"]

Status = Literal["healthy", "degraded", "unhealthy"]
_RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}


class HealthRules(Spec):
    """Thresholds that turn recent calls and breaker states into a status.

    Args:
        window_s: how far back calls count.
        min_calls: below this many calls in the window, rates are not judged (too few to mean much).
        degraded_error_rate / unhealthy_error_rate: failed-call fractions that make the service
            ``degraded`` / ``unhealthy``.
        degraded_p95_s / unhealthy_p95_s: 95th-percentile call latency bounds.
        degraded_answer_rate: fraction of answers served degraded (cache or canned) above which the
            service is ``degraded``.
    """

    window_s: float = Field(60.0, gt=0)
    min_calls: int = Field(10, ge=1)
    degraded_error_rate: float = Field(0.05, ge=0, le=1)
    unhealthy_error_rate: float = Field(0.5, ge=0, le=1)
    degraded_p95_s: float = Field(5.0, gt=0)
    unhealthy_p95_s: float = Field(30.0, gt=0)
    degraded_answer_rate: float = Field(0.01, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> HealthRules:
        if self.unhealthy_error_rate < self.degraded_error_rate:
            raise ValueError("unhealthy_error_rate must be ≥ degraded_error_rate")
        if self.unhealthy_p95_s < self.degraded_p95_s:
            raise ValueError("unhealthy_p95_s must be ≥ degraded_p95_s")
        return self

    @classmethod
    def from_slos(
        cls, slos: Iterable[Any] | None = None, *, unhealthy_factor: float = 10.0, **overrides: Any
    ) -> HealthRules:
        """Thresholds from SLOs: degraded once the availability SLO's error budget is being overspent
        (error rate above ``1 - target``) or the latency SLO's bound is passed at p95; unhealthy at
        ``unhealthy_factor`` times either."""
        from agentops.slo import DEFAULT_SLOS

        values: dict[str, Any] = {}
        for slo in DEFAULT_SLOS if slos is None else slos:
            if slo.kind == "availability":
                values["degraded_error_rate"] = slo.error_budget
                values["unhealthy_error_rate"] = min(1.0, slo.error_budget * unhealthy_factor)
            elif slo.kind == "latency" and slo.threshold:
                values["degraded_p95_s"] = slo.threshold
                values["unhealthy_p95_s"] = slo.threshold * unhealthy_factor
        return cls(**{**values, **overrides})


@dataclass(frozen=True)
class Health:
    """One health verdict.

    Attributes:
        status: ``healthy``, ``degraded`` or ``unhealthy``.
        reasons: why it is not healthy (empty when healthy).
        live: the process can serve (never depends on dependencies).
        ready: traffic may be sent here (``status != "unhealthy"``).
        calls, error_rate, p95_s, degraded_rate: the recent window (rates ``None`` below ``min_calls``).
        breakers: circuit state per dependency.
    """

    status: Status
    reasons: tuple[str, ...]
    live: bool
    ready: bool
    calls: int
    error_rate: float | None
    p95_s: float | None
    degraded_rate: float | None
    breakers: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``/readyz`` returns)."""
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        out["breakers"] = dict(self.breakers)
        return out


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank


class HealthMonitor:
    """Records model-call outcomes in a sliding window; an AG2 middleware factory; thread-safe.

    Args:
        rules: thresholds (default :class:`HealthRules`).
        clock: seconds, injectable (``SimulatedClock().now`` in drills, ``time.monotonic`` by default).
        max_samples: the window never holds more than this many calls.
    """

    def __init__(
        self,
        rules: HealthRules | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_samples: int = 10_000,
    ) -> None:
        self.rules = rules or HealthRules()
        self.clock = clock
        self._samples: deque[tuple[float, bool, float, bool]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        return _Monitored(event, context, monitor=self)

    def record(self, ok: bool, latency_s: float, *, degraded: bool = False, at: float | None = None) -> None:
        """Record one call: whether it succeeded, how long it took, whether the answer was degraded."""
        with self._lock:
            self._samples.append((self.clock() if at is None else at, bool(ok), float(latency_s), bool(degraded)))

    def _window(self, now: float) -> list[tuple[float, bool, float, bool]]:
        start = now - self.rules.window_s
        return [s for s in self._samples if s[0] >= start]

    def check(self, breakers: Mapping[str, str] | None = None) -> Health:
        """The verdict now, from the recent window and ``breakers`` (name → ``closed``/``open``/``half_open``)."""
        r, states = self.rules, dict(breakers or {})
        with self._lock:
            recent = self._window(self.clock())
        n = len(recent)
        judged = n >= r.min_calls
        error_rate = sum(not ok for _, ok, _, _ in recent) / n if judged else None
        degraded_rate = sum(d for *_, d in recent) / n if judged else None
        p95 = _p95([lat for _, ok, lat, _ in recent if ok] or [0.0]) if judged else None
        found: list[tuple[Status, str]] = []
        opened = sorted(name for name, state in states.items() if state == "open")
        if states and len(opened) == len(states):
            found.append(("unhealthy", f"every circuit is open ({', '.join(opened)})"))
        elif opened:
            found.append(("degraded", f"circuit open: {', '.join(opened)}"))
        half = sorted(name for name, state in states.items() if state == "half_open")
        if half:
            found.append(("degraded", f"circuit half-open (probing): {', '.join(half)}"))
        if error_rate is not None:
            level = _level(error_rate, r.degraded_error_rate, r.unhealthy_error_rate)
            if level:
                found.append((level, f"error rate {error_rate:.1%} over the last {n} calls"))
        if p95 is not None:
            level = _level(p95, r.degraded_p95_s, r.unhealthy_p95_s)
            if level:
                found.append((level, f"p95 latency {p95:.2f} s over the last {n} calls"))
        if degraded_rate is not None and degraded_rate > r.degraded_answer_rate:
            found.append(("degraded", f"{degraded_rate:.1%} of answers served degraded"))
        status: Status = max((s for s, _ in found), key=_RANK.__getitem__, default="healthy")
        return Health(
            status=status,
            reasons=tuple(reason for _, reason in found),
            live=True,
            ready=status != "unhealthy",
            calls=n,
            error_rate=error_rate,
            p95_s=p95,
            degraded_rate=degraded_rate,
            breakers=states,
        )


def _level(value: float, degraded: float, unhealthy: float) -> Status | None:
    if value > unhealthy:
        return "unhealthy"
    if value > degraded:
        return "degraded"
    return None


class _Monitored(BaseMiddleware):
    def __init__(self, event: BaseEvent, context: Any, *, monitor: HealthMonitor) -> None:
        super().__init__(event, context)
        self.monitor = monitor

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        clock = self.monitor.clock
        started = clock()
        try:
            response = await call_next(events, context)
        except Exception:
            self.monitor.record(False, clock() - started)
            raise
        from agentops.resilience.fallback import is_degraded

        self.monitor.record(True, clock() - started, degraded=is_degraded(response))
        return response


def health_routes(check: Callable[[], Health]) -> list[Any]:
    """Starlette routes ``GET /healthz`` (liveness) and ``GET /readyz`` (readiness, 503 when not ready)."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def healthz(request: Any) -> Any:
        health = check()
        return JSONResponse({"status": "alive" if health.live else "dead"}, status_code=200 if health.live else 503)

    async def readyz(request: Any) -> Any:
        health = check()
        return JSONResponse(health.to_dict(), status_code=200 if health.ready else 503)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
