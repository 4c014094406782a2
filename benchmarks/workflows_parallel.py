"""Parallel workflow stages vs the same stages run one at a time (baseline measured in the same run).

Each stage is one offline AG2 call sleeping LATENCY seconds. With N independent stages in a parallel group
the group should take about LATENCY; run sequentially it takes about N x LATENCY.

Also: what one approval costs (asked through a one-turn ``ag2.Agent``'s ``hitl_hook``) next to one plain
offline ``ask`` measured in the same run.
"""

from __future__ import annotations

import asyncio
import time

import ag2

from agentops.escalation import ApprovalRequest, ScriptedApprover, request_approval
from agentops.models import OfflineModel
from agentops.workflows import WorkflowTemplate, run_workflow

LATENCY = 0.2
REPEATS = 3


def template(n: int, parallel: bool) -> WorkflowTemplate:
    stages = [{"name": f"check_{i}", "instructions": f"Check {i}."} for i in range(n)]
    groups = [[s["name"] for s in stages]] if parallel else []
    return WorkflowTemplate.from_dict({"name": f"bench_{n}_{parallel}", "stages": stages, "parallel_groups": groups})


async def timed(t: WorkflowTemplate) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        model = OfflineModel(seed=0, latency_s=LATENCY)
        start = time.perf_counter()
        run = await run_workflow(t, "benchmark request", models=model)
        best = min(best, time.perf_counter() - start)
        assert run.status == "completed", run.reason
    return best


async def per_call_ms(make_call, n: int = 200) -> float:
    await make_call()  # warm up
    start = time.perf_counter()
    for _ in range(n):
        await make_call()
    return (time.perf_counter() - start) / n * 1000


async def approvals() -> None:
    agent = ag2.Agent("bench", "Answer.", config=OfflineModel(seed=0))
    request = ApprovalRequest("stage", "bench/deploy", "Deploy?")
    approver = ScriptedApprover(default=True)
    ask = await per_call_ms(lambda: agent.ask("hello"))
    approve = await per_call_ms(lambda: request_approval(approver, request, timeout_s=30))
    print(f"one approval {approve:.2f} ms  vs  one offline ask {ask:.2f} ms  ({approve / ask:.2f}x)")


async def main() -> None:
    print(f"stage latency {LATENCY:.2f} s, best of {REPEATS}")
    print(f"{'stages':>6}  {'sequential s':>12}  {'parallel s':>10}  {'speed-up':>8}  {'par / latency':>13}")
    for n in (2, 4, 8):
        seq = await timed(template(n, parallel=False))
        par = await timed(template(n, parallel=True))
        print(f"{n:>6}  {seq:>12.3f}  {par:>10.3f}  {seq / par:>7.2f}x  {par / LATENCY:>13.2f}")
    await approvals()


if __name__ == "__main__":
    asyncio.run(main())
