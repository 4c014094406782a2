"""Chapter 05 numbers in one run: fan-out timing, semantic lookup time, routed vs always-strong.

Run: ``python benchmarks/cost_performance.py`` (semantic-match precision/recall on public question
pairs is ``benchmarks/semantic_match.py``: it needs the QQP sample, see benchmarks/DATA_CARD.md).

Fan-out is timed twice: on a simulated clock (``looptime``: simulated latencies advance virtual time,
CPU work does not — the ratio shows whether the calls overlap) and on the wall clock (which adds the
CPU cost of eight agent turns, stretched by whatever else the machine runs).
"""

from __future__ import annotations

import asyncio
import time

import ag2
import numpy as np

from agentops.caching import HashingEmbedder, MemoryVectorStore, SemanticCache
from agentops.caching.semantic import _Entry
from agentops.evals import run_suite
from agentops.fanout import fan_out
from agentops.models import OfflineModel
from agentops.routing import Router
from agentops.scenarios.cost_performance import SUPPORT_PROMPT, offline_tiers, support_suite
from agentops.testing import run_simulated


async def _fanout_times(clock) -> dict[str, float]:
    """One call, 8 sequential, 8 concurrent (fan_out) at 200 ms per call, timed with ``clock``."""
    agent = ag2.Agent("worker", "Answer briefly.", config=OfflineModel(latency_s=0.2, sleep=True))
    tasks = [f"subtask {i}: summarise section {i}" for i in range(8)]
    await fan_out(agent, ["warm-up"] * 8, concurrency=8)  # first-use costs (imports, caches) paid here
    out = {}
    t0 = clock()
    await agent.ask(tasks[0])
    out["one"] = clock() - t0
    t0 = clock()
    for t in tasks:
        await agent.ask(t)
    out["sequential"] = clock() - t0
    t0 = clock()
    await fan_out(agent, tasks, concurrency=8)
    out["concurrent"] = clock() - t0
    return out


def fanout() -> None:
    sim = run_simulated(_fanout_times)
    print(
        f"fan-out 8 × 200 ms on a simulated clock: one call {sim['one']:.3f} s, sequential {sim['sequential']:.3f} s, "
        f"concurrent {sim['concurrent']:.3f} s → concurrent / one call = {sim['concurrent'] / sim['one']:.2f}× "
        "(target ≤ 1.2×)"
    )
    c0 = time.process_time()
    wall = asyncio.run(_fanout_times(time.perf_counter))
    cpu_per_ask = (time.process_time() - c0) / 26
    print(
        f"  wall clock: one {wall['one']:.3f} s, sequential {wall['sequential']:.3f} s, concurrent "
        f"{wall['concurrent']:.3f} s → {wall['concurrent'] / wall['one']:.2f}× one call; CPU per ask "
        f"{1000 * cpu_per_ask:.1f} ms, so 8 asks add ≈ {8 * cpu_per_ask * 1000:.0f} ms of CPU that a loaded machine "
        "stretches (most of it is AG2's turn itself — benchmarks/offline_turn.py splits it; fan_out is a "
        "semaphore and a gather)"
    )


def lookup(n: int, dim: int = 384, queries: int = 300) -> None:
    rng = np.random.default_rng(0)
    store = MemoryVectorStore(dim)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for i, v in enumerate(vecs):
        store.add(v, _Entry(f"question {i}", f"answer {i}", "default", None))
    cache = SemanticCache(HashingEmbedder(dim), store=store)
    qs = vecs[rng.integers(0, n, queries)] + 0.01 * rng.standard_normal((queries, dim)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    for q in qs[:20]:
        cache.lookup("question", vector=q)
    walls = []
    c0 = time.process_time()
    for q in qs:
        t0 = time.perf_counter()
        cache.lookup("question", vector=q)
        walls.append(time.perf_counter() - t0)
    cpu = (time.process_time() - c0) / queries
    p10, p50 = (1000 * float(np.percentile(walls, q)) for q in (10, 50))
    t0 = time.perf_counter()
    for q in qs[:5]:
        _ = sorted(range(n), key=lambda i, q=q: -float(vecs[i] @ q))[:5]  # baseline: Python loop
    base = (time.perf_counter() - t0) / 5
    print(
        f"semantic lookup at {n:,} entries (embedding excluded): CPU {1000 * cpu:.2f} ms, wall p50 {p50:.2f} ms, "
        f"p10 {p10:.2f} ms (target < 2 ms at 10k); per-row Python loop {1000 * base:.0f} ms = "
        f"{base / (p50 / 1000):.0f}× slower"
    )


async def routing() -> None:
    suite, ts = support_suite(), offline_tiers()
    rows = {}
    for name, cfg in (("always-cheap", ts[0].config), ("always-strong", ts[1].config), ("routed", Router(ts).model())):
        run = await run_suite(suite, ag2.Agent("s", SUPPORT_PROMPT, config=cfg), concurrency=4, run_id=name)
        rows[name] = run.totals()
        print(f"{name:14s} pass rate {rows[name]['pass_rate']:.2f}  cost ${rows[name]['cost_usd']:.6f}")
    r, s = rows["routed"], rows["always-strong"]
    print(
        f"  routed cost / always-strong = {r['cost_usd'] / s['cost_usd']:.2f} at pass rate "
        f"{r['pass_rate']:.2f} vs {s['pass_rate']:.2f}"
    )


def _load() -> str:
    import os

    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def main() -> None:
    print(_load(), "(wall times stretch with load; CPU times do not)")
    fanout()
    for n in (10_000, 100_000):
        lookup(n)
    asyncio.run(routing())


if __name__ == "__main__":
    main()
