"""What full instrumentation adds to an offline agent turn, and how much of it is agentops' own layer.

One turn is ``await agent.ask(...)`` against the zero-latency offline model. Every variant runs in the
same process, interleaved round by round in a rotating order, so drift (CPU frequency, garbage
collection, other processes on a shared machine) hits them alike.

Variants:
  baseline       no middleware: the bare turn
  ag2_both       AG2's TelemetryMiddleware + MetricsMiddleware on the plain SDK pipeline
                 (TracerProvider -> SimpleSpanProcessor -> InMemorySpanExporter): what AG2 costs
  full_no_logs   Telemetry.instrument() with no log handler (no JSON line is built)
  full           Telemetry.instrument(): AG2's two + agentops (cost, redaction of every exported span,
                 the agentops metric families, correlated JSON log lines written to /dev/null)

The agentops layer is ``full - ag2_both``: everything but AG2's middleware. It is estimated from
pairs measured in the same round (the median of the per-round differences), so slow drift cancels;
the JSON log lines are ``full - full_no_logs``. Times are the main thread's CPU time (what the turn
computes, not how long the scheduler of a busy machine made it wait); ``--clock wall`` uses
``perf_counter`` instead.

Target (issue 10): the agentops layer adds at most 60 µs to a turn.

Run: ``python benchmarks/telemetry_overhead.py [--rounds 40] [--turns 25] [--clock cpu|wall]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import time
from collections.abc import Callable

import ag2
from ag2.middleware.builtin import MetricsMiddleware, TelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from agentops.models import OfflineModel
from agentops.telemetry import Telemetry

TARGET_US = 60.0
QUESTION = "How do I reset my password?"


async def _turns(agent: ag2.Agent, n: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(n):
        await agent.ask(QUESTION)
    return (clock() - start) / n


def _agent(*middleware: object) -> ag2.Agent:
    return ag2.Agent("support", "You are a support agent.", config=OfflineModel(seed=0), middleware=list(middleware))


def _variants(sink: object) -> tuple[dict[str, ag2.Agent], Callable[[], None]]:
    """The agents to compare, and a function that empties every span store between rounds."""
    logged = Telemetry(logger=logging.getLogger("agentops.bench_logged"))
    logged.log_to(sink)  # every turn writes its JSON lines (2 per plain turn)
    full = logged.instrument(_agent())[0]
    quiet = Telemetry(logger=logging.getLogger("agentops.bench_quiet"))  # no handler: no line built
    assert not quiet.logger.isEnabledFor(logging.INFO), "the quiet variant must not log"
    full_no_logs = quiet.instrument(_agent())[0]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ag2_both = _agent(
        TelemetryMiddleware(tracer_provider=provider, capture_content=False, agent_name="support"),
        MetricsMiddleware(CollectorRegistry()),
    )

    def clear() -> None:
        logged.store.clear()
        quiet.store.clear()
        exporter.clear()

    variants = {"baseline": _agent(), "ag2_both": ag2_both, "full_no_logs": full_no_logs, "full": full}
    return variants, clear


async def measure(rounds: int, turns: int, clock: Callable[[], float]) -> dict[str, list[float]]:
    """Seconds per turn of every variant, one sample per round."""
    with open(os.devnull, "w") as sink:
        variants, clear = _variants(sink)
        for agent in variants.values():  # warm up imports, caches, pydantic models
            await _turns(agent, 20, clock)
        samples: dict[str, list[float]] = {k: [] for k in variants}
        names = list(variants)
        for r in range(rounds):
            # rotate the order every round so no variant always runs after the same neighbour
            for name in names[r % len(names) :] + names[: r % len(names)]:
                gc.collect()
                samples[name].append(await _turns(variants[name], turns, clock))
            clear()
    return samples


def _paired(samples: dict[str, list[float]], a: str, b: str) -> tuple[float, float, float]:
    """Median and quartiles of ``a - b`` over rounds, in µs."""
    diffs = sorted((x - y) * 1e6 for x, y in zip(samples[a], samples[b], strict=True))
    q = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else [diffs[0]] * 3
    return statistics.median(diffs), q[0], q[2]


def report(samples: dict[str, list[float]], clock_name: str) -> str:
    """The table printed by the benchmark."""
    med = {k: statistics.median(v) for k, v in samples.items()}
    base = med["baseline"]
    out = [f"clock: {clock_name}; {len(samples['baseline'])} rounds", ""]
    out.append(f"{'variant':<13} {'µs/turn':>9} {'added µs':>9} {'ratio':>7} {'best µs':>9}")
    for name, secs in med.items():
        out.append(
            f"{name:<13} {secs * 1e6:9.0f} {(secs - base) * 1e6:9.0f} {secs / base:7.3f} "
            f"{min(samples[name]) * 1e6:9.0f}"
        )
    ours, lo, hi = _paired(samples, "full", "ag2_both")
    logs, llo, lhi = _paired(samples, "full", "full_no_logs")
    ag2_cost, _, _ = _paired(samples, "ag2_both", "baseline")
    out += [
        "",
        f"AG2 middleware (ag2_both - baseline): +{ag2_cost:.0f} µs per turn",
        f"agentops layer (full - ag2_both):     +{ours:.0f} µs per turn (quartiles {lo:.0f} .. {hi:.0f}), "
        f"{ours / (base * 1e6) * 100:.2f}% of a bare turn",
        f"  of which JSON log lines (full - full_no_logs): +{logs:.0f} µs (quartiles {llo:.0f} .. {lhi:.0f})",
        f"target: agentops layer <= {TARGET_US:.0f} µs: {'met' if ours <= TARGET_US else 'NOT met'}",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--turns", type=int, default=25)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = parser.parse_args()
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(report(asyncio.run(measure(args.rounds, args.turns, clock)), args.clock))
