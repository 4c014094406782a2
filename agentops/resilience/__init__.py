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

import importlib
from typing import TYPE_CHECKING, Any

from agentops import _identity  # noqa: F401

if TYPE_CHECKING:
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
    from agentops.resilience.retries import AttemptTimeout, RetryPolicy, RetrySettings, as_provider_error
    from agentops.resilience.server import FAULT_KINDS, FaultServer, HTTPFaults, build_app
    from agentops.resilience.validation import InputGuard, InputLimits, InputRejected, check_input, check_output

# Submodules load on first use (PEP 562): ``from agentops.resilience.retries import RetryPolicy`` must not
# pull in the HTTP server, Redis and Prometheus — the workflow runner imports it on every chapter.
_HOMES = {
    "AnswerCache": "agentops.resilience.fallback",
    "AttemptTimeout": "agentops.resilience.retries",
    "BreakerSettings": "agentops.resilience.breaker",
    "Breakers": "agentops.resilience.breaker",
    "Bulkhead": "agentops.resilience.fallback",
    "BulkheadFull": "agentops.resilience.fallback",
    "CircuitBreaker": "agentops.resilience.breaker",
    "CircuitOpen": "agentops.resilience.breaker",
    "FAULT_KINDS": "agentops.resilience.server",
    "FallbackExhausted": "agentops.resilience.fallback",
    "FallbackModel": "agentops.resilience.fallback",
    "FaultServer": "agentops.resilience.server",
    "HTTPFaults": "agentops.resilience.server",
    "Health": "agentops.resilience.health",
    "HealthMonitor": "agentops.resilience.health",
    "HealthRules": "agentops.resilience.health",
    "IdempotencyLedger": "agentops.resilience.idempotency",
    "InputGuard": "agentops.resilience.validation",
    "InputLimits": "agentops.resilience.validation",
    "InputRejected": "agentops.resilience.validation",
    "RedisBreakerStore": "agentops.resilience.breaker",
    "ResilienceMetrics": "agentops.resilience.metrics",
    "RetryPolicy": "agentops.resilience.retries",
    "RetrySettings": "agentops.resilience.retries",
    "ToolNotRerun": "agentops.resilience.idempotency",
    "as_provider_error": "agentops.resilience.retries",
    "build_app": "agentops.resilience.server",
    "check_input": "agentops.resilience.validation",
    "check_output": "agentops.resilience.validation",
    "health_routes": "agentops.resilience.health",
    "is_degraded": "agentops.resilience.fallback",
    "served_by": "agentops.resilience.fallback",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'agentops.resilience' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "FAULT_KINDS",
    "AnswerCache",
    "AttemptTimeout",
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
