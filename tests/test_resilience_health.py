"""Health: statuses and reasons from the recent window and breaker states; liveness vs readiness."""

from __future__ import annotations

import ag2
import httpx
import pytest

from agentops.errors import ConfigError
from agentops.models import OfflineModel
from agentops.resilience import HealthMonitor, HealthRules, HTTPFaults
from agentops.slo import SLO


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _monitor(**rules) -> tuple[HealthMonitor, Clock]:
    clock = Clock()
    return HealthMonitor(HealthRules(min_calls=10, **rules), clock=clock), clock


def test_healthy_until_enough_calls_then_judged_by_error_rate() -> None:
    monitor, _ = _monitor()
    for _ in range(5):
        monitor.record(False, 0.1)
    health = monitor.check()
    assert health.status == "healthy" and health.error_rate is None and health.calls == 5  # too few to judge
    for _ in range(15):
        monitor.record(True, 0.1)
    health = monitor.check()
    assert health.status == "degraded" and health.error_rate == 0.25 and health.ready and health.live
    assert health.reasons == ("error rate 25.0% over the last 20 calls",)
    for _ in range(20):
        monitor.record(False, 0.1)
    health = monitor.check()
    assert health.status == "unhealthy" and not health.ready and health.live  # liveness ignores dependencies


def test_latency_and_degraded_answers() -> None:
    monitor, _ = _monitor(degraded_p95_s=1.0, unhealthy_p95_s=5.0)
    for i in range(20):
        monitor.record(True, 2.0 if i == 0 else 0.1)
    assert monitor.check().status == "healthy" and monitor.check().p95_s == 0.1  # nearest rank: the 19th of 20
    monitor.record(True, 2.0)
    health = monitor.check()
    assert health.status == "degraded" and health.reasons == ("p95 latency 2.00 s over the last 21 calls",)
    for _ in range(3):
        monitor.record(True, 9.0)
    health = monitor.check()
    assert health.status == "unhealthy" and health.p95_s == 9.0
    monitor2, _ = _monitor()
    for i in range(20):
        monitor2.record(True, 0.1, degraded=i < 2)
    assert monitor2.check().reasons == ("10.0% of answers served degraded",)


def test_breaker_states_decide_readiness() -> None:
    monitor, _ = _monitor()
    assert monitor.check({"a": "closed", "b": "open"}).status == "degraded"
    half = monitor.check({"a": "half_open", "b": "closed"})
    assert half.status == "degraded" and half.reasons == ("circuit half-open (probing): a",)
    down = monitor.check({"a": "open", "b": "open"})
    assert down.status == "unhealthy" and not down.ready and down.reasons == ("every circuit is open (a, b)",)
    assert down.to_dict()["breakers"] == {"a": "open", "b": "open"}


def test_old_calls_leave_the_window() -> None:
    monitor, clock = _monitor(window_s=60)
    for _ in range(20):
        monitor.record(False, 0.1)
    assert monitor.check().status == "unhealthy"
    clock.t = 61.0
    assert monitor.check().status == "healthy" and monitor.check().calls == 0


def test_rules_from_slos_and_validation() -> None:
    rules = HealthRules.from_slos()
    assert rules.degraded_error_rate == pytest.approx(0.01) and rules.unhealthy_error_rate == pytest.approx(0.1)
    assert rules.degraded_p95_s == 5.0 and rules.unhealthy_p95_s == 50.0
    custom = HealthRules.from_slos([SLO(name="avail", kind="availability", target=0.9)], window_s=30)
    assert custom.degraded_error_rate == pytest.approx(0.1) and custom.window_s == 30
    with pytest.raises(ConfigError, match="unhealthy_error_rate"):
        HealthRules(degraded_error_rate=0.5, unhealthy_error_rate=0.1)


async def test_monitor_is_middleware_recording_each_model_call() -> None:
    monitor, _ = _monitor()
    failing = OfflineModel(sleep=False, faults={"server_error": 1.0})
    agent = ag2.Agent("a", "Be brief.", config=OfflineModel(sleep=False), middleware=[monitor])
    await agent.ask("hi")
    with pytest.raises(Exception):  # noqa: B017 - the provider's error, whatever it is
        await ag2.Agent("b", "Be brief.", config=failing, middleware=[monitor]).ask("hi")
    assert [ok for _, ok, _, _ in monitor._samples] == [True, False]


def test_readyz_and_healthz_on_the_served_app(fault_servers) -> None:
    server = fault_servers(OfflineModel(sleep=False), faults=HTTPFaults(server_error=1.0))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(12):
        httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=5)
    ready = httpx.get(f"{server.url}/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["status"] == "unhealthy" and ready.json()["error_rate"] == 1.0
    assert httpx.get(f"{server.url}/healthz", timeout=5).json() == {"status": "alive"}
    assert server.health().status == "unhealthy"
