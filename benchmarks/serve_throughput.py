"""Benchmark for chapter 08: the agent service on loopback, full production stack vs a bare agent.

Both run behind the same server (uvicorn, REST ``/v1/ask``, API-key check) in the same process and run:

* ``bare`` — an ``ag2.Agent`` on the offline model, no middleware, no rate limit;
* ``full`` — the same agent with telemetry (spans + Prometheus), guardrails, a health monitor (feeding
  ``/readyz``), a token budget on a ``RedisLedger``, a per-key rate limit in Redis and the admission
  queue in Redis (capacity = the concurrency, so it admits every request: its cost, not its waiting, is
  measured); falls back to in-process stores without Redis.

Printed: requests/s and p50/p95 latency at a fixed concurrency, and the full/bare ratios.

Run: ``python benchmarks/serve_throughput.py [--requests 400] [--concurrency 16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time

import ag2
import httpx

from agentops.budgets import Budget, BudgetMiddleware, InProcessLedger, RedisLedger
from agentops.guardrails import GuardrailMiddleware
from agentops.models import OfflineModel
from agentops.scenarios.deployment import SUPPORT_PROMPT, offline_rules
from agentops.serve import AdmissionQueue, KeyStore, RateLimit, RedisQueueStore, ServiceThread, build_app
from agentops.telemetry import Telemetry

KEY = "benchmark-key-000001"
REDIS = "redis://127.0.0.1:6379/2"


def _redis_ok() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


def _bare(concurrency: int) -> tuple[ag2.Agent, RateLimit | None, AdmissionQueue | None]:
    return ag2.Agent("support", SUPPORT_PROMPT, config=OfflineModel(rules=offline_rules())), None, None


def _full(use_redis: bool, concurrency: int) -> tuple[ag2.Agent, RateLimit | None, AdmissionQueue | None]:
    import redis

    from agentops.resilience import HealthMonitor

    model = OfflineModel(rules=offline_rules())
    ledger = RedisLedger(redis.Redis.from_url(REDIS), prefix="bench-serve") if use_redis else InProcessLedger()
    budget = BudgetMiddleware(
        ledger, agent="support", budgets=[Budget("b", scope="global", max_tokens=10**9)], model=model
    )
    telemetry = Telemetry(exporter="none")
    middleware = [*telemetry.middleware("support"), HealthMonitor(), GuardrailMiddleware(agent="support"), budget]
    limit = RateLimit("1000000/minute", storage_url=REDIS if use_redis else "memory://", namespace="bench-serve")
    store = None
    if use_redis:
        store = RedisQueueStore(redis.Redis.from_url(REDIS), namespace="bench-serve-queue")
        store.clear()
    queue = AdmissionQueue(store, capacity=concurrency, max_waiting=10 * concurrency)
    return ag2.Agent("support", SUPPORT_PROMPT, config=model, middleware=middleware), limit, queue


async def _load(url: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, limits=limits, timeout=30) as client:

        async def one(i: int) -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.post("/v1/ask", json={"prompt": f"refund for order {i}?"})
                latencies.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text

        await asyncio.gather(*(one(i) for i in range(min(20, n))))  # warm-up
        latencies.clear()
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start, latencies


def _measure(name: str, build, n: int, concurrency: int) -> dict[str, float]:
    agent, limit, queue = build(concurrency)

    def make(url: str):
        return build_app(agent, keys=KeyStore({"bench": KEY}), url=url, rate_limit=limit, queue=queue)

    with ServiceThread(make) as running:
        elapsed, lat = asyncio.run(_load(running.url, n, concurrency))
    lat.sort()
    return {
        "stack": name,
        "rps": n / elapsed,
        "p50_ms": 1000 * statistics.median(lat),
        "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    logging.getLogger("ag2").setLevel(logging.ERROR)
    use_redis = _redis_ok()
    rows = [
        _measure("bare ag2.Agent", _bare, args.requests, args.concurrency),
        _measure(
            "full stack" + (" (Redis)" if use_redis else " (in-process)"),
            lambda c: _full(use_redis, c),
            args.requests,
            args.concurrency,
        ),
    ]
    print(f"{args.requests} requests, concurrency {args.concurrency}, loopback, one uvicorn worker")
    for r in rows:
        print(f"  {r['stack']:<22} {r['rps']:8.1f} req/s   p50 {r['p50_ms']:7.1f} ms   p95 {r['p95_ms']:7.1f} ms")
    bare, full = rows
    print(f"full/bare: throughput ×{full['rps'] / bare['rps']:.2f}, p95 ×{full['p95_ms'] / bare['p95_ms']:.2f}")


if __name__ == "__main__":
    main()
