"""Chaos drill: a support agent with a side-effecting tool over real HTTP at 20% injected faults.

Each request asks the agent to open a ticket for one order (``open_ticket`` counts every ticket, so a
duplicated side effect is visible). Requests go through AG2's OpenAI client to two local fault servers
(primary and secondary provider), ``--concurrency`` at a time, from a caller that retries a request that
raised once, with the same idempotency key. Faults are drawn per request body and attempt, from the same
seed for both stacks: 429 with ``Retry-After``, 500/502/503, connection reset, slow first byte
(``--slow-s``), truncated answer (finish reason ``length``), malformed JSON body — evenly.

Stacks (agentops.resilience.drill.build_agents):
  AG2 defaults   OpenAIConfig as shipped: the openai SDK's 2 retries (it honours Retry-After), 10-min timeout
  resilient      FallbackModel(primary, secondary) with RetryPolicy (4 attempts, held output, validation),
                 circuit breakers, a bulkhead, an answer cache; the tool at-most-once per idempotency key

Then both stacks once more without faults (``--baseline-requests``), for the latency the machinery itself
costs. Everything is measured in one run; numbers are printed as a table.

Run: ``python benchmarks/chaos.py [--requests 1000] [--fault-rate 0.2] [--concurrency 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import httpx2
import pandas as pd

from agentops.resilience import FaultServer, HTTPFaults
from agentops.resilience.drill import CallCounter, TicketDesk, build_agents, collect, drill_model, drive


async def _run(stack: str, args: argparse.Namespace, fault_rate: float, requests: int) -> dict:
    faults = HTTPFaults.uniform(fault_rate, retry_after_s=args.retry_after_s, slow_s=args.slow_s)
    desk, counter = TicketDesk(), CallCounter()
    with (
        FaultServer(drill_model(args.seed), faults=faults, seed=args.seed) as primary_server,
        FaultServer(drill_model(args.seed), faults=faults, seed=args.seed + 1) as secondary_server,
    ):
        http = httpx2.AsyncClient()  # one connection pool for every ask (an SSL context per ask is slow)
        options = {"timeout": args.attempt_timeout_s, "max_retries": 0, "http_client": http}
        primary = primary_server.config("offline-1", **options)
        secondary = secondary_server.config("offline-mini", **options)
        agent = build_agents(primary, secondary, desk, counter=counter, seed=args.seed)[stack]
        started = time.perf_counter()
        outcomes = await drive(agent, range(requests), concurrency=args.concurrency, caller_retries=1)
        wall = time.perf_counter() - started
        await http.aclose()
        result = collect(stack, outcomes, desk, [primary_server, secondary_server], counter, wall)
    row = result.summary()
    row["stack"] = {"ag2": "AG2 defaults", "resilient": "resilient"}[stack]
    row["faults %"] = round(100 * fault_rate, 1)
    row["wall s"] = wall
    return row


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("OPENAI_API_KEY", "fault-server")  # the local servers ignore it
    rows = []
    for fault_rate, n in ((args.fault_rate, args.requests), (0.0, args.baseline_requests)):
        for stack in ("ag2", "resilient"):
            rows.append(await _run(stack, args, fault_rate, n))
            print(f"  done: {rows[-1]['stack']} at {rows[-1]['faults %']}% faults ({rows[-1]['wall s']:.1f} s)")
    table = pd.DataFrame(rows).set_index(["faults %", "stack"])
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(table.T.to_string())
    by = {(r["faults %"], r["stack"]): r for r in rows}
    faulty, clean = round(100 * args.fault_rate, 1), 0.0
    res, ag2_clean, res_clean = by[(faulty, "resilient")], by[(clean, "AG2 defaults")], by[(clean, "resilient")]
    print(
        f"\np95 cost of resilience without faults: {res_clean['p95 latency s']:.3f} s vs "
        f"{ag2_clean['p95 latency s']:.3f} s for AG2 defaults "
        f"({res_clean['p95 latency s'] / ag2_clean['p95 latency s']:.2f}x)"
    )
    print(
        f"p95 under {faulty:g}% faults: {res['p95 latency s']:.3f} s resilient vs "
        f"{by[(faulty, 'AG2 defaults')]['p95 latency s']:.3f} s AG2 defaults; "
        f"resilient p95 under faults / without: {res['p95 latency s'] / res_clean['p95 latency s']:.2f}x"
    )
    ok = res["answered correctly %"] >= 99.9 and res["duplicated side effects"] == 0
    print(f"target (≥ 99.9% answered correctly, 0 duplicated side effects): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--baseline-requests", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--attempt-timeout-s", type=float, default=1.0, help="resilient stack: per-attempt timeout")
    parser.add_argument("--slow-s", type=float, default=3.0, help="first-byte delay of a slow fault")
    parser.add_argument("--retry-after-s", type=float, default=0.05, help="Retry-After sent with a 429")
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
