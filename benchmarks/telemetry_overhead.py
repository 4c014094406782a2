"""Overhead of full instrumentation (JSON logs + spans + metrics) on an offline agent turn.

One turn is ``await agent.ask(...)`` against the zero-latency offline model. Every variant runs in the
same process, interleaved round by round (in a rotating order) so drift (CPU frequency, GC, other
processes) hits them alike. Each variant's cost is the fastest per-round mean (least disturbed by
other load; the median is printed beside it).

Variants:
  baseline       no middleware
  ag2_spans      AG2 TelemetryMiddleware alone, on the plain SDK pipeline
                 (TracerProvider -> SimpleSpanProcessor -> InMemorySpanExporter)
  ag2_metrics    AG2 MetricsMiddleware alone
  ag2_both       both AG2 middlewares (what AG2 costs before agentops adds anything)
  full_no_logs   Telemetry.instrument() with logging disabled (no JSON lines are built)
  full           Telemetry.instrument(): AG2's two + agentops (cost, redaction of every exported span,
                 metrics, correlated JSON log lines written to /dev/null)

The agentops layer is ``full - ag2_both``: it includes redacting every span at export, cost, the
agentops metric families and the JSON log lines (``full - full_no_logs``).

Run: ``python benchmarks/telemetry_overhead.py [--rounds 30] [--turns 40]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time

import ag2
from ag2.middleware.builtin import MetricsMiddleware, TelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from agentops.models import OfflineModel
from agentops.telemetry import Telemetry


async def _turns(agent: ag2.Agent, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await agent.ask("How do I reset my password?")
    return (time.perf_counter() - start) / n


def _agent(*middleware: object) -> ag2.Agent:
    return ag2.Agent(
        "support", "You are a support agent.", config=OfflineModel(seed=0), middleware=list(middleware)
    )


def _plain_sdk() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def main(rounds: int, turns: int) -> dict[str, tuple[float, float]]:
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    telemetry = Telemetry(logger=logging.getLogger("agentops.bench_logged"))
    telemetry.log_to(sink)  # every turn writes its JSON lines (2 per plain turn)
    full = _agent()
    telemetry.instrument(full)
    quiet = Telemetry(logger=logging.getLogger("agentops.bench_quiet"))  # no handler: lines skipped
    assert not quiet.logger.isEnabledFor(logging.INFO), "the quiet variant must not log"
    full_no_logs = _agent()
    quiet.instrument(full_no_logs)
    spans_provider, spans_exporter = _plain_sdk()
    both_provider, both_exporter = _plain_sdk()
    variants = {
        "baseline": _agent(),
        "ag2_spans": _agent(
            TelemetryMiddleware(tracer_provider=spans_provider, capture_content=False, agent_name="support")
        ),
        "ag2_metrics": _agent(MetricsMiddleware(CollectorRegistry())),
        "ag2_both": _agent(
            TelemetryMiddleware(tracer_provider=both_provider, capture_content=False, agent_name="support"),
            MetricsMiddleware(CollectorRegistry()),
        ),
        "full_no_logs": full_no_logs,
        "full": full,
    }
    for agent in variants.values():  # warm up imports, caches, pydantic models
        await _turns(agent, 20)
    samples: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(rounds):
        # rotate the order every round so no variant always runs after the same neighbour
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(await _turns(variants[name], turns))
        for t in (telemetry, quiet):
            t.store.clear()
        spans_exporter.clear()
        both_exporter.clear()
    sink.close()
    return {k: (min(v), statistics.median(v)) for k, v in samples.items()}


def report(both: dict[str, tuple[float, float]]) -> str:
    """The table printed by the benchmark."""
    result = {k: v[0] for k, v in both.items()}
    base = result["baseline"]
    out = [f"{'variant':<13} {'µs/turn':>9} {'added µs':>9} {'ratio':>7} {'median µs':>10}"]
    for name, secs in result.items():
        out.append(
            f"{name:<13} {secs * 1e6:9.0f} {(secs - base) * 1e6:9.0f} {secs / base:7.3f} "
            f"{both[name][1] * 1e6:10.0f}"
        )
    ours = result["full"] - result["ag2_both"]
    out.append("")
    out.append(
        f"full instrumentation: ratio {result['full'] / base:.3f} "
        f"(+{(result['full'] / base - 1) * 100:.1f}%, +{(result['full'] - base) * 1e6:.0f} µs per turn)"
    )
    out.append(
        f"  of which AG2 middleware: +{(result['ag2_both'] - base) * 1e6:.0f} µs "
        f"({(result['ag2_both'] / base - 1) * 100:.1f}%); agentops layer: +{ours * 1e6:.0f} µs "
        f"({ours / base * 100:.1f}% of a baseline turn)"
    )
    logs = result["full"] - result["full_no_logs"]
    out.append(f"  JSON log lines (part of the agentops layer): +{logs * 1e6:.0f} µs per turn")
    out.append(f"  target ≤ 5% added: {'met' if result['full'] / base <= 1.05 else 'NOT met'}")
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    print(report(asyncio.run(main(args.rounds, args.turns))))
