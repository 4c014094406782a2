"""CPU per offline turn: AG2's stock per-subscription call models against the reused ones, in the same run.

Every ``ask`` subscribes fresh closures to its stream and AG2 builds a fast_depends call model (a new
pydantic model class) for each; :func:`agentops._ag2.reuse_subscription_models` — installed by the
offline model — builds one per subscriber function and reuses it. This times a bare offline agent with
one tool (the shape of most chapter turns) both ways, in alternating rounds so machine load hits both
alike, and reports CPU time (``time.process_time``), which load inflates far less than wall time.
Usage: ``python benchmarks/offline_turn.py [--turns N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import ag2
import ag2.stream

from agentops import _ag2
from agentops.models import model_config


def lookup_order(order_id: str) -> str:
    """Status of an order."""
    return f"order {order_id}: shipped"


async def _turns(agent: ag2.Agent, n: int) -> float:
    start = time.process_time()
    for i in range(n):
        await agent.ask(f"Where is my order A{1000 + i}?")
    return (time.process_time() - start) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200, help="turns per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per variant; the median is reported")
    args = parser.parse_args()

    cache = _ag2.reuse_subscription_models()
    agent = ag2.Agent("support", "Be brief.", config=model_config("offline", seed=0), tools=[lookup_order])
    variants = {"stock AG2 (a call model per subscription)": cache.build, "reused call models": cache}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    asyncio.run(_turns(agent, 20))  # warm-up: imports, first templates
    for _ in range(args.rounds):
        for name, build in variants.items():
            ag2.stream.build_model = build
            samples[name].append(asyncio.run(_turns(agent, args.turns)))
    ag2.stream.build_model = cache
    stock, reused = (statistics.median(s) for s in samples.values())
    for name, s in samples.items():
        print(f"{name:<44}{statistics.median(s):>8.2f} ms CPU per turn  (median of {len(s)})")
    print(f"offline turn with reused call models: {stock / reused:.1f}x less CPU than stock AG2")


if __name__ == "__main__":
    main()
