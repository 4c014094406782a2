"""Parallel workflow stages vs the same stages run one at a time (baseline measured in the same run).

Each stage is one offline AG2 call sleeping LATENCY seconds. With N independent stages in a parallel group
the group should take about LATENCY; run sequentially it takes about N x LATENCY.
"""

from __future__ import annotations

import asyncio
import time

from agentops.models import OfflineModel
from agentops.workflows import WorkflowTemplate, run_workflow

LATENCY = 0.2
REPEATS = 3


def template(n: int, parallel: bool) -> WorkflowTemplate:
    stages = [{"name": f"check_{i}", "instructions": f"Check {i}."} for i in range(n)]
    groups = [[s["name"] for s in stages]] if parallel else []
    return WorkflowTemplate.from_dict(
        {"name": f"bench_{n}_{parallel}", "stages": stages, "parallel_groups": groups}
    )


async def timed(t: WorkflowTemplate) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        model = OfflineModel(seed=0, latency_s=LATENCY)
        start = time.perf_counter()
        run = await run_workflow(t, "benchmark request", models=model)
        best = min(best, time.perf_counter() - start)
        assert run.status == "completed", run.reason
    return best


async def main() -> None:
    print(f"stage latency {LATENCY:.2f} s, best of {REPEATS}")
    print(f"{'stages':>6}  {'sequential s':>12}  {'parallel s':>10}  {'speed-up':>8}  {'par / latency':>13}")
    for n in (2, 4, 8):
        seq = await timed(template(n, parallel=False))
        par = await timed(template(n, parallel=True))
        print(f"{n:>6}  {seq:>12.3f}  {par:>10.3f}  {seq / par:>7.2f}x  {par / LATENCY:>13.2f}")


if __name__ == "__main__":
    asyncio.run(main())
