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

Then both stacks once more without faults (``--baseline-requests``), one request at a time, in alternating
rounds, for the latency the machinery itself costs. Everything is measured in one run; numbers are printed
as a table. Latency is the caller's view (caller retries included); with requests in flight at once on a
CPU-bound process it is mostly queueing, so the fault-free rounds run one request at a time.

Run: ``python benchmarks/chaos.py [--requests 1000] [--fault-rate 0.2] [--concurrency 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pandas as pd

from agentops.resilience import FaultServer, HTTPFaults
from agentops.resilience.drill import CallCounter, DrillResult, TicketDesk, build_agents, collect, drill_model, drive

STACKS = {"ag2": "AG2 defaults", "resilient": "resilient"}


@contextlib.contextmanager
def _servers(args: argparse.Namespace, fault_rate: float) -> Iterator[tuple[FaultServer, FaultServer]]:
    faults = HTTPFaults.uniform(fault_rate, retry_after_s=args.retry_after_s, slow_s=args.slow_s)
    with (
        FaultServer(drill_model(args.seed), faults=faults, seed=args.seed) as primary_server,
        FaultServer(drill_model(args.seed), faults=faults, seed=args.seed + 1) as secondary_server,
    ):
        yield primary_server, secondary_server


def _agents(
    servers: tuple[FaultServer, FaultServer],
    http: Any,
    args: argparse.Namespace,
    desk: TicketDesk,
    counter: CallCounter,
) -> dict[str, Any]:
    options = {"timeout": args.attempt_timeout_s, "max_retries": 0, "http_client": http}
    primary, secondary = servers[0].config("offline-1", **options), servers[1].config("offline-mini", **options)
    return build_agents(primary, secondary, desk, counter=counter, seed=args.seed)


async def _under_faults(stack: str, args: argparse.Namespace) -> dict[str, Any]:
    """``--requests`` requests, ``--concurrency`` at a time, at ``--fault-rate``."""
    desk, counter = TicketDesk(), CallCounter()
    with _servers(args, args.fault_rate) as servers:
        http = httpx2.AsyncClient()  # one connection pool for every ask (an SSL context per ask is slow)
        agent = _agents(servers, http, args, desk, counter)[stack]
        started = time.perf_counter()
        outcomes = await drive(agent, range(args.requests), concurrency=args.concurrency, caller_retries=1)
        wall = time.perf_counter() - started
        await http.aclose()
        row = collect(stack, outcomes, desk, servers, counter, wall).summary()
    return {**row, "stack": STACKS[stack], "faults %": round(100 * args.fault_rate, 1), "wall s": wall}


async def _without_faults(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Both stacks, one request at a time, in alternating rounds (drift from other load hits both alike)."""
    outcomes: dict[str, list[Any]] = {s: [] for s in STACKS}
    with _servers(args, 0.0) as servers:
        http = httpx2.AsyncClient()
        agents = {s: _agents(servers, http, args, TicketDesk(), CallCounter())[s] for s in STACKS}
        per_round = max(1, args.baseline_requests // args.rounds)
        for r in range(args.rounds):
            for stack in list(STACKS)[:: 1 if r % 2 == 0 else -1]:
                batch = range(r * per_round, (r + 1) * per_round)
                outcomes[stack] += await drive(agents[stack], batch, concurrency=1, caller_retries=1)
        await http.aclose()
    rows = []
    for stack, found in outcomes.items():
        row = DrillResult(stack, found, 0, 0, 0, 0.0).summary()
        rows.append({**row, "stack": STACKS[stack], "faults %": 0.0, "wall s": sum(o.latency_s for o in found)})
    return rows


async def main(args: argparse.Namespace) -> None:
    rows = []
    for stack in STACKS:
        rows.append(await _under_faults(stack, args))
        print(f"  done: {rows[-1]['stack']} at {rows[-1]['faults %']}% faults ({rows[-1]['wall s']:.1f} s)", flush=True)
    rows += await _without_faults(args)
    table = pd.DataFrame(rows).set_index(["faults %", "stack"])
    for column in ("duplicated side effects", "model-call retries", "caller retries", "degraded answers"):
        table.loc[(0.0, slice(None)), column] = float("nan")  # not measured in the fault-free rounds
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(table.T.to_string())
    by = {(r["faults %"], r["stack"]): r for r in rows}
    faulty = round(100 * args.fault_rate, 1)
    res, ag2 = by[(faulty, "resilient")], by[(faulty, "AG2 defaults")]
    res_clean, ag2_clean = by[(0.0, "resilient")], by[(0.0, "AG2 defaults")]
    p95, p50 = "p95 latency s", "p50 latency s"
    print(
        f"\nwithout faults, one request at a time: p95 {res_clean[p95]:.3f} s resilient vs "
        f"{ag2_clean[p95]:.3f} s AG2 defaults ({res_clean[p95] / ag2_clean[p95]:.2f}x); "
        f"p50 {res_clean[p50]:.3f} s vs {ag2_clean[p50]:.3f} s ({res_clean[p50] / ag2_clean[p50]:.2f}x)"
    )
    print(
        f"under {faulty:g}% faults, {args.concurrency} at a time: p95 {res['p95 latency s']:.3f} s resilient vs "
        f"{ag2['p95 latency s']:.3f} s AG2 defaults ({res['p95 latency s'] / ag2['p95 latency s']:.2f}x)"
    )
    ok = res["answered correctly %"] >= 99.9 and res["duplicated side effects"] == 0
    print(f"target (≥ 99.9% answered correctly, 0 duplicated side effects): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--baseline-requests", type=int, default=200, help="fault-free requests per stack")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds of the fault-free run")
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--attempt-timeout-s", type=float, default=1.0, help="resilient stack: per-attempt timeout")
    parser.add_argument("--slow-s", type=float, default=3.0, help="first-byte delay of a slow fault")
    parser.add_argument("--retry-after-s", type=float, default=0.05, help="Retry-After sent with a 429")
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
