"""A delegation tree of 8 independent leaves: parallel siblings vs one leaf, and cost-tree totals vs usage.

Every offline model call sleeps LATENCY seconds. The root plans (one call), its 8 leaves run side by side
(concurrency 8), and the root synthesises (one call), so the tree should take about 3 x LATENCY: the leaf
phase (tree time minus the root's own plan and synthesis time) should be at most 1.3x one leaf. Baselines
measured in the same run: one leaf alone, and the same tree with concurrency 1 (leaves one at a time).
The cost tree's totals must equal the usage the simulator reported for every call.

    PYTHONPATH=. python benchmarks/delegation_tree.py
"""

from __future__ import annotations

import asyncio
import time

from agentops.delegation import DelegationLimits, Delegator
from agentops.models import OfflineModel
from agentops.scenarios.advanced import delegation
from agentops.usage import cost_usd

LATENCY = 0.2
LEAVES = 8
REPEATS = 3
TASK = f"Run {LEAVES} independent checks"


async def one_leaf() -> float:
    best = float("inf")
    for _ in range(REPEATS):
        tree = Delegator(
            OfflineModel(rules=delegation().rules, latency_s=LATENCY), limits=DelegationLimits(max_depth=0)
        )
        start = time.perf_counter()
        await tree.run("Check item 1")
        best = min(best, time.perf_counter() - start)
    return best


async def tree(concurrency: int) -> tuple[float, float, OfflineModel, object]:
    best, best_leaf_phase, kept = float("inf"), float("inf"), None
    for _ in range(REPEATS):
        model = OfflineModel(rules=delegation().rules, latency_s=LATENCY)
        limits = DelegationLimits(max_depth=1, max_breadth=LEAVES, concurrency=concurrency, max_calls=50)
        start = time.perf_counter()
        run = await Delegator(model, limits=limits).run(TASK)
        wall = time.perf_counter() - start
        assert all(c.status == "solved" for c in run.root.children), run.frame()
        if wall < best:
            best, best_leaf_phase, kept = wall, wall - run.root.latency_s, (model, run)
    return best, best_leaf_phase, *kept


async def main() -> None:
    leaf = await one_leaf()
    wall, leaf_phase, model, run = await tree(concurrency=LEAVES)
    seq_wall, _, _, _ = await tree(concurrency=1)
    totals = run.totals()
    print(f"one leaf (plan-free solve):        {leaf:.3f} s")
    print(
        f"tree, {LEAVES} leaves, concurrency {LEAVES}:  {wall:.3f} s  (root plan+synthesis {run.root.latency_s:.3f} s)"
    )
    print(f"leaf phase / one leaf:             {leaf_phase / leaf:.2f}x  (target <= 1.3x)")
    print(f"tree, concurrency 1 (baseline):    {seq_wall:.3f} s  -> parallel speed-up {seq_wall / wall:.2f}x")
    usage_usd = cost_usd(model.usage, model.model)
    print(f"cost tree: {totals['calls']} calls, {totals['tokens']} tokens, ${totals['cost_usd']:.6f}")
    print(f"simulator: {model.calls} calls, {int(model.usage.total_tokens)} tokens, ${usage_usd:.6f}")
    equal = (totals["calls"], totals["tokens"]) == (model.calls, int(model.usage.total_tokens))
    print("totals equal per-call usage:", equal and abs(totals["cost_usd"] - usage_usd) < 1e-12)


if __name__ == "__main__":
    asyncio.run(main())
