"""Chapter 05 numbers in one run: fan-out timing, semantic lookup time, routed vs always-strong.

Run: ``python benchmarks/cost_performance.py`` (semantic-match precision/recall on public paraphrase
pairs is ``benchmarks/semantic_match.py``: it needs the MRPC files, see benchmarks/DATA_CARD.md).
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


async def fanout() -> None:
    model = OfflineModel(latency_s=0.2, sleep=True)
    agent = ag2.Agent("worker", "Answer briefly.", config=model)
    tasks = [f"subtask {i}: summarise section {i}" for i in range(8)]
    t0 = time.perf_counter()
    await agent.ask(tasks[0])
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in tasks:
        await agent.ask(t)
    seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    await fan_out(agent, tasks, concurrency=8)
    par = time.perf_counter() - t0
    print(f"fan-out 8 × 200 ms: one call {one:.3f} s, sequential {seq:.3f} s, concurrent {par:.3f} s")
    print(f"  concurrent / one call = {par / one:.2f}× (target ≤ 1.2×); sequential / concurrent = {seq / par:.1f}×")


def lookup(n: int, dim: int = 384, queries: int = 200) -> None:
    rng = np.random.default_rng(0)
    store = MemoryVectorStore(dim)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for i, v in enumerate(vecs):
        store.add(v, _Entry(f"question {i}", f"answer {i}", "default", None))
    cache = SemanticCache(HashingEmbedder(dim), store=store)
    qs = vecs[rng.integers(0, n, queries)] + 0.01 * rng.standard_normal((queries, dim)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for q in qs:
        cache.lookup("question", vector=q)
    per, cpu = (time.perf_counter() - t0) / queries, (time.process_time() - c0) / queries
    t0 = time.perf_counter()
    for q in qs[:20]:
        _ = sorted(range(n), key=lambda i, q=q: -float(vecs[i] @ q))[:5]  # baseline: Python loop
    base = (time.perf_counter() - t0) / 20
    print(
        f"semantic lookup at {n:,} entries (embedding excluded): wall {1000 * per:.2f} ms, CPU {1000 * cpu:.2f} ms "
        f"(target < 2 ms at 10k); per-row Python loop {1000 * base:.0f} ms = {base / per:.0f}× slower"
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
    asyncio.run(fanout())
    for n in (10_000, 100_000):
        lookup(n)
    asyncio.run(routing())


if __name__ == "__main__":
    main()
