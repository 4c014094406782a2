"""A delegation tree of 8 independent leaves: parallel siblings vs one leaf, and cost-tree totals vs usage.

Every offline model call takes LATENCY seconds. The root plans (one call), its 8 leaves run side by side
(concurrency 8), and the root synthesises (one call), so the tree should take about 3 x LATENCY: the leaf
phase (tree time minus the root's own plan and synthesis time) should be at most 1.3x one leaf.

Timed twice. On a simulated clock (``looptime``): a call's latency advances virtual time and CPU work does
not, so the ratio says whether the leaves overlap, independent of machine load — this is the target.
On the wall clock: the same plus the CPU of ten AG2 agent turns, which a loaded machine stretches
(reported, with the CPU per call, so the two can be told apart). Baselines come from the same run: one
leaf alone, and the same tree with concurrency 1. The cost tree's totals must equal the usage the
simulator reported for every call.

    PYTHONPATH=. python benchmarks/delegation_tree.py
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from agentops.delegation import DelegationLimits, Delegator
from agentops.models import OfflineModel
from agentops.scenarios.advanced import delegation
from agentops.testing import run_simulated
from agentops.usage import cost_usd

LATENCY = 0.2
LEAVES = 8
TASK = f"Run {LEAVES} independent checks"


def _model() -> OfflineModel:
    return OfflineModel(rules=delegation().rules, latency_s=LATENCY)


async def measure(clock: Callable[[], float]) -> dict:
    """One leaf, the tree at concurrency 8 and at concurrency 1, timed with ``clock``."""
    await Delegator(_model(), limits=DelegationLimits(max_depth=0), clock=clock).run("warm-up")
    start = clock()
    await Delegator(_model(), limits=DelegationLimits(max_depth=0), clock=clock).run("Check item 1")
    leaf = clock() - start
    out = {"leaf": leaf}
    for concurrency in (LEAVES, 1):
        model = _model()
        limits = DelegationLimits(max_depth=1, max_breadth=LEAVES, concurrency=concurrency, max_calls=50)
        start = clock()
        run = await Delegator(model, limits=limits, clock=clock).run(TASK)
        wall = clock() - start
        assert all(c.status == "solved" for c in run.root.children), run.frame()
        out[concurrency] = {"wall": wall, "leaf_phase": wall - run.root.latency_s, "run": run, "model": model}
    return out


def main() -> None:
    sim = run_simulated(measure)
    c0 = time.process_time()
    real = asyncio.run(measure(time.perf_counter))
    cpu_per_call = (time.process_time() - c0) / (2 + 2 * (LEAVES + 2))
    for label, m in (("simulated clock", sim), ("wall clock", real)):
        par, seq = m[LEAVES], m[1]
        print(
            f"{label}: one leaf {m['leaf']:.3f} s; tree of {LEAVES} leaves {par['wall']:.3f} s (root plan+synthesis "
            f"{par['run'].root.latency_s:.3f} s); leaf phase / one leaf = {par['leaf_phase'] / m['leaf']:.2f}x "
            f"(target <= 1.3x); concurrency 1: {seq['wall']:.3f} s -> speed-up {seq['wall'] / par['wall']:.2f}x"
        )
    print(f"  CPU per model call on the wall-clock run: {1000 * cpu_per_call:.1f} ms (AG2 turn + simulator)")
    run, model = real[LEAVES]["run"], real[LEAVES]["model"]
    totals = run.totals()
    usage_usd = cost_usd(model.usage, model.model)
    print(f"cost tree: {totals['calls']} calls, {totals['tokens']} tokens, ${totals['cost_usd']:.6f}")
    print(f"simulator: {model.calls} calls, {int(model.usage.total_tokens)} tokens, ${usage_usd:.6f}")
    equal = (totals["calls"], totals["tokens"]) == (model.calls, int(model.usage.total_tokens))
    print("totals equal per-call usage:", equal and abs(totals["cost_usd"] - usage_usd) < 1e-12)


if __name__ == "__main__":
    main()
