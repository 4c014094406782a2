"""ResilienceMetrics: the listener turns retries, circuit changes and fallback steps into Prometheus families."""

from __future__ import annotations

import ag2
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agentops.errors import ServerError
from agentops.models import OfflineModel
from agentops.resilience import AnswerCache, Breakers, BreakerSettings, FallbackModel, ResilienceMetrics, RetryPolicy


async def _no_wait(seconds: float) -> None:
    return None


async def test_a_chain_through_an_outage_is_counted() -> None:
    metrics = ResilienceMetrics(CollectorRegistry())
    listen = [metrics.listener]
    down = OfflineModel("primary-1", sleep=False, faults={"server_error": 1.0})
    breakers = Breakers(BreakerSettings(failure_threshold=2), listeners=listen)
    chain = FallbackModel(
        down,
        retry=RetryPolicy(max_attempts=3, sleep=_no_wait, listeners=listen),
        breakers=breakers,
        cache=AnswerCache(),
        listeners=listen,
    )
    reply = await ag2.Agent("a", "Be brief.", config=chain).ask("hi")
    assert reply.response.provider == "agentops-fallback"
    value = metrics.registry.get_sample_value
    assert value("agentops_retries_total", {"model": "offline/primary-1", "error": "ServerError"}) == 1
    assert value("agentops_circuit_state", {"breaker": "offline/primary-1"}) == 2
    assert value("agentops_circuit_transitions_total", {"breaker": "offline/primary-1", "to": "open"}) == 1
    assert value("agentops_fallback_steps_total", {"model": "offline/primary-1", "outcome": "circuit_open"}) is None
    assert value("agentops_fallback_steps_total", {"model": "offline/primary-1", "outcome": "failed"}) == 1
    assert value("agentops_fallback_steps_total", {"model": "cache", "outcome": "miss"}) == 1
    assert value("agentops_degraded_answers_total", {"step": "canned"}) == 1
    assert b"agentops_circuit_state" in generate_latest(metrics.registry)


def test_other_kinds_are_ignored_and_one_registry_holds_one_set() -> None:
    registry = CollectorRegistry()
    metrics = ResilienceMetrics(registry)
    metrics.listener("tool.denied", {"agent": "a", "tool": "t", "reason": "no"})
    assert registry.get_sample_value("agentops_retries_total", {"model": "m", "error": "e"}) is None
    with pytest.raises(ValueError):
        ResilienceMetrics(registry)
    assert isinstance(ServerError("x"), Exception)
