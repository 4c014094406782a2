"""Resilience for AG2 agents: retries that honour the provider, circuit breakers, a fallback chain with
graceful degradation, idempotent tools, health checks, validation at the edge — and a local
OpenAI-compatible server that breaks on purpose to prove them.

One module per concern:

==================  ===========================================================================
``retries``         :class:`RetryPolicy` — call-level retries composed with AG2's ``RetryMiddleware``
``validation``      :func:`check_input` / :class:`InputGuard` at the edge; :func:`check_output` (faults)
``breaker``         :class:`Breakers` / :class:`CircuitBreaker` per provider/model (memory or Redis)
``fallback``        :class:`FallbackModel` — models → cached answer → canned reply; :class:`Bulkhead`
``idempotency``     :class:`IdempotencyLedger` — tools with side effects run at most once per key
``health``          :class:`HealthMonitor` — healthy / degraded / unhealthy, ``/healthz`` + ``/readyz``
``metrics``         :class:`ResilienceMetrics` — retries, circuit states, fallback steps in Prometheus
``server``          :class:`FaultServer` — the offline model over HTTP with seeded wire faults
``drill``           :func:`run_drill` — the chaos drill of chapter 07 and ``benchmarks/chaos.py``
==================  ===========================================================================
"""

from __future__ import annotations

from agentops import _identity  # noqa: F401
from agentops.resilience.breaker import Breakers, BreakerSettings, CircuitBreaker, CircuitOpen, RedisBreakerStore
from agentops.resilience.fallback import (
    AnswerCache,
    Bulkhead,
    BulkheadFull,
    FallbackExhausted,
    FallbackModel,
    is_degraded,
    served_by,
)
from agentops.resilience.health import Health, HealthMonitor, HealthRules, health_routes
from agentops.resilience.idempotency import IdempotencyLedger, ToolNotRerun
from agentops.resilience.metrics import ResilienceMetrics
from agentops.resilience.retries import RetryPolicy, RetrySettings, as_provider_error
from agentops.resilience.server import FAULT_KINDS, FaultServer, HTTPFaults, build_app
from agentops.resilience.validation import InputGuard, InputLimits, InputRejected, check_input, check_output

__all__ = [
    "FAULT_KINDS",
    "AnswerCache",
    "BreakerSettings",
    "Breakers",
    "Bulkhead",
    "BulkheadFull",
    "CircuitBreaker",
    "CircuitOpen",
    "FallbackExhausted",
    "FallbackModel",
    "FaultServer",
    "HTTPFaults",
    "Health",
    "HealthMonitor",
    "HealthRules",
    "IdempotencyLedger",
    "InputGuard",
    "InputLimits",
    "InputRejected",
    "RedisBreakerStore",
    "ResilienceMetrics",
    "RetryPolicy",
    "RetrySettings",
    "ToolNotRerun",
    "as_provider_error",
    "build_app",
    "check_input",
    "check_output",
    "health_routes",
    "is_degraded",
    "served_by",
]
