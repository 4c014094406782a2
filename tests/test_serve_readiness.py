"""``/readyz`` follows chapter 07's health (breakers, error rate) and the dependencies; ``/healthz`` does not."""

from __future__ import annotations

import asyncio
import socket

import pytest

pytest.importorskip("a2a")
httpx = pytest.importorskip("httpx")

from agentops.resilience import Breakers, BreakerSettings, HealthMonitor, HealthRules  # noqa: E402
from agentops.scenarios.deployment import support_agent  # noqa: E402
from agentops.serve import (  # noqa: E402
    AdmissionQueue,
    AgentService,
    KeyStore,
    RateLimit,
    RedisQueueStore,
    ServiceThread,
    build_app,
)

KEYS = KeyStore({"ops": "ops-secret-key-0001"})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


def _service(**options):
    return AgentService(support_agent(), keys=KEYS, url="http://127.0.0.1:1", **options)


def test_ready_when_healthy_and_the_monitor_is_found_in_the_middleware():
    svc = _service()
    assert isinstance(svc.health, HealthMonitor)
    report = svc.readiness_report()
    assert report["ready"] and report["detail"] == "ok" and report["health"]["status"] == "healthy"


def test_every_breaker_open_makes_the_service_not_ready():
    breakers = Breakers(BreakerSettings(failure_threshold=1))
    breaker = breakers.get("openai/gpt-4o-mini")
    svc = _service(breakers=breakers)
    assert svc.readiness() == (True, "ok")
    asyncio.run(breaker.record("failure"))
    ready, detail = svc.readiness()
    assert not ready and detail == "every circuit is open (openai/gpt-4o-mini)"
    assert svc.readiness_report()["health"]["breakers"] == {"openai/gpt-4o-mini": "open"}


def test_a_failing_model_window_makes_the_service_not_ready():
    monitor = HealthMonitor(HealthRules(min_calls=2), clock=lambda: 100.0)
    for _ in range(3):
        monitor.record(False, 0.1)
    ready, detail = _service(health=monitor).readiness()
    assert not ready and detail == "error rate 100.0% over the last 3 calls"


def test_dependencies_down_are_named():
    from redis import Redis

    port = _closed_port()
    limit = RateLimit("5/minute", storage_url=f"redis://127.0.0.1:{port}/0")
    queue = AdmissionQueue(RedisQueueStore(Redis(port=port, socket_connect_timeout=0.5)), capacity=1)
    report = _service(rate_limit=limit, queue=queue).readiness_report()
    assert not report["ready"]
    assert report["reasons"] == [
        "dependency down: rate-limit storage unreachable",
        "dependency down: queue storage unreachable",
    ]


def test_a_broken_health_check_is_a_reason_not_a_crash():
    def broken():
        raise RuntimeError("boom")

    ready, detail = _service(health=broken).readiness()
    assert not ready and detail == "health check failed: RuntimeError"


def test_readyz_over_http_follows_breakers_while_healthz_stays_live():
    states = {"openai/gpt-4o-mini": "closed"}

    def make(url):
        return build_app(support_agent(), keys=KEYS, url=url, breakers=lambda: states)

    with ServiceThread(make) as running:
        ok = httpx.get(running.url + "/readyz")
        assert ok.status_code == 200 and ok.json()["health"] == "healthy"
        states["openai/gpt-4o-mini"] = "open"
        down = httpx.get(running.url + "/readyz")
        assert down.status_code == 503
        assert down.json() == {
            "status": "not_ready",
            "detail": "every circuit is open (openai/gpt-4o-mini)",
            "health": "unhealthy",
        }
        live = httpx.get(running.url + "/healthz")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        running.service.draining = True
        assert httpx.get(running.url + "/readyz").json()["detail"].startswith("draining")
        running.service.draining = False


def test_an_unexpected_turn_failure_answers_500_with_a_json_body():
    class Broken:
        name = "broken"

        async def ask(self, prompt):
            raise RuntimeError("bound to a different event loop")

    svc = AgentService(Broken(), keys=KEYS, url="http://127.0.0.1:1", health=lambda: None)
    status, body = asyncio.run(svc.ask("hi", "c-1"))
    assert (status, body) == (500, {"error": "internal_error", "kind": "RuntimeError"})
    assert not svc.inflight
