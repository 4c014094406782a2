"""Prometheus metrics for resilience: retries, circuit states, fallback steps and degraded answers.

:class:`ResilienceMetrics` is a listener (``listeners=[metrics.listener]`` on a
:class:`~agentops.resilience.RetryPolicy`, :class:`~agentops.resilience.Breakers` and
:class:`~agentops.resilience.FallbackModel`) that turns their events into ``prometheus_client``
families on the registry you give it — the one :class:`agentops.telemetry.Telemetry` serves, so they
appear on the same ``/metrics`` page as AG2's ``ag2_*`` families:

* ``agentops_retries_total{model,error}`` — model calls (and idempotent tools) tried again;
* ``agentops_circuit_state{breaker}`` — 0 closed, 1 half-open, 2 open;
* ``agentops_circuit_transitions_total{breaker,to}``;
* ``agentops_fallback_steps_total{model,outcome}`` — each step of a chain: served, failed, circuit_open, ...;
* ``agentops_degraded_answers_total{step}`` — answers served from the cache or the canned reply.

``Telemetry.listener`` alongside it records the same events as span events and log lines. Label values
are names the package chose (model, breaker and error names), so cardinality stays bounded.

Example::

    metrics = ResilienceMetrics(telemetry.registry)
    policy = RetryPolicy(listeners=[metrics.listener, telemetry.listener])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from agentops import _identity  # noqa: F401
from agentops.listeners import BREAKER, FALLBACK, RETRY

__all__ = ["ResilienceMetrics"]

_LEVEL = {"closed": 0, "half_open": 1, "open": 2}


class ResilienceMetrics:
    """The resilience families on one ``CollectorRegistry``; :meth:`listener` feeds them (thread-safe)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.retries = Counter("agentops_retries", "Calls tried again", ["model", "error"], registry=r)
        self.circuit_state = Gauge(
            "agentops_circuit_state", "Circuit state: 0 closed, 1 half-open, 2 open", ["breaker"], registry=r
        )
        self.transitions = Counter(
            "agentops_circuit_transitions", "Circuit state changes", ["breaker", "to"], registry=r
        )
        self.fallback_steps = Counter(
            "agentops_fallback_steps", "Steps of fallback chains by outcome", ["model", "outcome"], registry=r
        )
        self.degraded = Counter(
            "agentops_degraded_answers", "Answers served degraded (cache or canned)", ["step"], registry=r
        )

    def listener(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Count one ``resilience.*`` event (other kinds are ignored)."""
        if kind == RETRY:
            self.retries.labels(str(payload.get("model", "")), str(payload.get("error", ""))).inc()
        elif kind == BREAKER:
            name, target = str(payload.get("breaker", "")), str(payload.get("to", ""))
            self.transitions.labels(name, target).inc()
            self.circuit_state.labels(name).set(_LEVEL.get(target, -1))
        elif kind == FALLBACK:
            step, outcome = str(payload.get("model", "")), str(payload.get("outcome", ""))
            self.fallback_steps.labels(step, outcome).inc()
            if outcome == "served" and step in ("cache", "canned"):
                self.degraded.labels(step).inc()
