"""Eval-suite throughput: 1,000 cases against the offline model (100 ms simulated latency, real sleep).

Reports wall time as a ratio to the ideal (cases × latency / concurrency) and to a sequential run,
for two targets:

* ``model``  — a plain ``async (prompt) -> TargetResponse`` making one offline-model call per case
  (evaluating a prompt directly): isolates the eval runner's own overhead;
* ``agent``  — an ``ag2.Agent`` on the same model: adds AG2's per-turn CPU cost, which is measured in
  this run (``floor``: the same asks through a bare ``asyncio.gather`` + semaphore, no eval layer).

A second ``model`` row saves the run JSON (``store_dir=``): without it the run is graded in memory.
For comparison it also times ``ag2.eval.run_agent`` on the same agent and cases (it builds an
OpenTelemetry tracer per task and reconstructs the trace from spans). The sequential baseline runs a
subset at concurrency 1 and is extrapolated linearly to all cases (stated in the output).

Usage: python benchmarks/evals_throughput.py [--cases 1000] [--concurrency 32] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from types import SimpleNamespace

import ag2
from ag2.eval import Suite as Ag2Suite
from ag2.eval import Task, run_agent
from ag2.eval.scorers import token_budget
from ag2.events import ModelRequest, TextInput

from agentops.evals import EvalSuite, run_suite
from agentops.evals.targets import TargetResponse
from agentops.models import OfflineModel


def build_suite(n: int) -> EvalSuite:
    cases = [
        {
            "id": f"case-{i:04d}",
            "prompt": f"Question number {i}: what is the status?",
            "tags": ["bench", f"shard{i % 4}"],
            "assert": [
                {"type": "contains_any", "values": ["offline answer"]},
                {"type": "max_tokens", "value": 200},
                {"type": "not_regex", "pattern": r"\b\d{3}-\d{2}-\d{4}\b"},
            ],
        }
        for i in range(n)
    ]
    return EvalSuite.model_validate({"name": "bench", "cases": cases})


def model_target(model: OfflineModel):
    """One direct model call per case; usage reported so tokens and cost are real."""
    client = model.create()
    ctx = SimpleNamespace(prompt=["You are a terse assistant."])

    async def target(prompt: str) -> TargetResponse:
        resp = await client([ModelRequest([TextInput(prompt)])], ctx, tools=(), response_schema=None, serializer=None)
        return TargetResponse(resp.content or "", usage={resp.model: resp.usage})

    return target


async def timed(coro) -> tuple[float, object]:
    t = time.perf_counter()
    out = await coro
    return time.perf_counter() - t, out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--sequential-subset", type=int, default=20)
    ap.add_argument("--skip-run-agent", action="store_true", help="skip the ag2.eval.run_agent comparison")
    a = ap.parse_args()
    logging.getLogger("ag2").setLevel(logging.ERROR)

    n, c, lat = a.cases, a.concurrency, a.latency
    ideal = n * lat / c
    suite = build_suite(n)
    sub = suite.model_copy(update={"cases": suite.cases[: a.sequential_subset]})
    scale = n / len(sub.cases)
    print(f"{n} cases, concurrency {c}, simulated latency {lat * 1000:.0f} ms → ideal {ideal:.2f} s")

    def fresh_model() -> OfflineModel:
        return OfflineModel("offline-1", seed=0, latency_s=lat, sleep=True)

    rows = []
    # -- target: the model itself ---------------------------------------------------------------
    m = fresh_model()
    wall, run = await timed(run_suite(suite, model_target(m), concurrency=c, progress=False))
    assert run.totals()["passed"] == n, run.totals()
    seq, _ = await timed(run_suite(sub, model_target(fresh_model()), concurrency=1, progress=False))
    rows.append(("model", "agentops.evals.run_suite", wall, seq * scale))
    with tempfile.TemporaryDirectory() as tmp:  # the same run, also writing ag2's run JSON
        wall_saved, _ = await timed(
            run_suite(suite, model_target(fresh_model()), concurrency=c, progress=False, store_dir=tmp)
        )
    rows.append(("model", "run_suite + store_dir (run JSON)", wall_saved, seq * scale))

    # -- target: an ag2.Agent -------------------------------------------------------------------
    agent = ag2.Agent("bench", "You are a terse assistant.", config=fresh_model())
    wall, run = await timed(run_suite(suite, agent, concurrency=c, progress=False))
    assert run.totals()["passed"] == n, run.totals()
    seq_agent, _ = await timed(run_suite(sub, agent, concurrency=1, progress=False))
    rows.append(("agent", "agentops.evals.run_suite", wall, seq_agent * scale))

    sem = asyncio.Semaphore(c)

    async def bare(prompt: str) -> None:
        async with sem:
            reply = await agent.ask(prompt)
            await reply.history.get_events()

    floor, _ = await timed(asyncio.gather(*(bare(x.prompt) for x in suite.cases)))
    rows.append(("agent", "floor: bare gather + semaphore", floor, seq_agent * scale))

    if not a.skip_run_agent:
        tasks = Ag2Suite([Task(inputs={"input": x.prompt}, task_id=x.id) for x in suite.cases], name="bench")
        with tempfile.TemporaryDirectory() as tmp:
            wall_ag2, res = await timed(
                run_agent(tasks, agent=agent, scorers=[token_budget(200)], store_dir=tmp, concurrency=c)
            )
        assert res.pass_rate("token_budget") == 1.0
        rows.append(("agent", "ag2.eval.run_agent", wall_ag2, seq_agent * scale))

    print(f"sequential baselines: {len(sub.cases)} cases at concurrency 1, extrapolated ×{scale:g} to {n}")
    print(f"{'target':<7} {'runner':<32} {'wall s':>7} {'× ideal':>8} {'× sequential':>13}")
    for target, runner, w, s in rows:
        print(f"{target:<7} {runner:<32} {w:7.2f} {w / ideal:8.2f} {w / s:13.3f}")
    agent_wall = rows[2][2]
    print(f"eval layer over the bare floor (agent target): {agent_wall / floor:.2f}×")
    print(
        f"target ≤ 1.3× ideal (model target): {'MET' if rows[0][2] / ideal <= 1.3 else 'MISSED'} "
        f"({rows[0][2] / ideal:.2f}×)"
    )


if __name__ == "__main__":
    asyncio.run(main())
