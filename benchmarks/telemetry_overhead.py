"""What full instrumentation adds to an offline agent turn, and how much of it is agentops' own layer.

One turn is ``await agent.ask(...)`` against the zero-latency offline model. Variants, all built in the
same process:

  baseline       no middleware: the bare turn
  ag2_both       AG2's TelemetryMiddleware + MetricsMiddleware on the plain SDK pipeline
                 (TracerProvider -> SimpleSpanProcessor -> InMemorySpanExporter): what AG2 costs
  full_no_logs   Telemetry.instrument() with no log handler (no JSON line is built)
  full           Telemetry.instrument() with JSON lines to /dev/null at INFO: AG2's two + agentops
                 (cost, redaction of every exported span, the agentops metric families, one
                 correlated log line per turn)
  full_debug     as full, at DEBUG: one more line per model call

  baseline_stock the bare turn with AG2's stock call models (one built per stream subscription): the
                 yardstick for this machine's speed (see below)

The agentops layer is ``full - ag2_both``: everything but AG2's middleware. Issue 10 asks for at most
60 µs on a turn that took 2725 µs bare (chapter 04's measurement), i.e. 2.2 % of a bare turn; a shared
machine's absolute speed varies by several times, so the check is made on the share measured in this
run, and the µs it means at that reference speed is printed beside it. The reference turn ran on AG2's
stock call models; the offline model now makes AG2 reuse them (``agentops._ag2.reuse_subscription_models``),
which makes a bare turn several times cheaper without changing what our layer costs. So the share is
taken of ``baseline_stock``, the same work the reference measured, while every other variant runs as
the package runs.

Two ways to measure, both with every variant in the same run:

* time (default): CPU time of the main thread per turn, one turn of each variant per cycle in a
  rotating order; the layer's cost is the median over cycles of ``full - ag2_both`` measured back to
  back, so drift cancels, with a bootstrap interval. On a busy machine single turns vary by tens of
  percent: it takes thousands of cycles to resolve tens of µs, which the interval shows.
* ``--instructions``: the same turns under valgrind's cachegrind, counting instructions — exact and
  independent of load (needs ``valgrind``; about ten minutes). One process imports and warms up, then
  forks a child per variant and turn count; the difference of two children's counts is the turns'.

Run: ``python benchmarks/telemetry_overhead.py [--cycles 3000] [--instructions [--ir-turns 10 40]]`` (on a
busy machine, ``--ir-turns 5 20`` halves the valgrind time at the same precision: counts are exact).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ag2
import ag2.stream
from ag2.middleware.builtin import MetricsMiddleware, TelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from agentops import _ag2
from agentops.models import OfflineModel
from agentops.telemetry import Telemetry

TARGET_US = 60.0  # issue 10: the agentops layer's cost ...
REFERENCE_TURN_US = 2725.0  # ... on a turn this fast (chapter 04's bare turn when the issue was filed)
TARGET_SHARE = TARGET_US / REFERENCE_TURN_US
QUESTION = "How do I reset my password?"
STOCK = "baseline_stock"  # the variant run on AG2's stock call models


def _build_model_for(name: str) -> object:
    """What ``ag2.stream.build_model`` is during ``name``'s turns."""
    cache = _ag2.reuse_subscription_models()
    return cache.build if name == STOCK else cache


def _agent(*middleware: object) -> ag2.Agent:
    return ag2.Agent("support", "You are a support agent.", config=OfflineModel(seed=0), middleware=list(middleware))


def _variants(sink: object) -> tuple[dict[str, ag2.Agent], Callable[[], None]]:
    """The agents to compare, and a function that empties every span store between rounds."""
    telemetries = []

    def instrumented(name: str, level: int | None) -> ag2.Agent:
        t = Telemetry(logger=logging.getLogger(f"agentops.bench.{name}"))
        if level is not None:
            t.log_to(sink, level=level)
        telemetries.append(t)
        return t.instrument(_agent())[0]

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    variants = {
        "baseline": _agent(),
        "ag2_both": _agent(
            TelemetryMiddleware(tracer_provider=provider, capture_content=False, agent_name="support"),
            MetricsMiddleware(CollectorRegistry()),
        ),
        "full_no_logs": instrumented("quiet", None),
        "full": instrumented("info", logging.INFO),
        "full_debug": instrumented("debug", logging.DEBUG),
        STOCK: _agent(),
    }
    assert not telemetries[0].logger.isEnabledFor(logging.INFO), "the quiet variant must not log"

    def clear() -> None:
        for t in telemetries:
            t.store.clear()
        exporter.clear()

    return variants, clear


async def _turns(agent: ag2.Agent, n: int) -> None:
    for _ in range(n):
        await agent.ask(QUESTION)


def _warm_up(variants: dict[str, ag2.Agent]) -> None:
    """Imports, caches and pydantic models warmed; then the heap so far is frozen, so a collection
    scans only what the measured turns allocate (a full collection of the warm-up's objects would
    otherwise land at random in one variant's rounds)."""
    for name, agent in variants.items():
        ag2.stream.build_model = _build_model_for(name)
        asyncio.run(_turns(agent, 20))
    gc.collect()
    gc.freeze()


# -- time ------------------------------------------------------------------------------------------


def measure_time(cycles: int) -> dict[str, list[float]]:
    """CPU seconds of single turns: each cycle runs one turn of every variant, in a rotating order.

    Turns are interleaved one by one, so the turns compared in a cycle run within milliseconds of each
    other and share the machine's state; that keeps their difference far steadier than the turns.
    """
    with open(os.devnull, "w") as sink:
        variants, clear = _variants(sink)
        _warm_up(variants)
        samples: dict[str, list[float]] = {k: [] for k in variants}
        names = list(variants)
        clock = time.thread_time

        async def run() -> None:
            for c in range(cycles):
                for name in names[c % len(names) :] + names[: c % len(names)]:
                    agent = variants[name]
                    ag2.stream.build_model = _build_model_for(name)
                    start = clock()
                    await agent.ask(QUESTION)
                    samples[name].append(clock() - start)
                if c % 100 == 99:
                    clear()

        asyncio.run(run())
    return samples


def _paired(samples: dict[str, list[float]], a: str, b: str) -> tuple[float, float, float]:
    """Median of ``a - b`` over cycles, in µs, with a 95 % interval (bootstrap of the median)."""
    import random

    diffs = [(x - y) * 1e6 for x, y in zip(samples[a], samples[b], strict=True)]
    rng = random.Random(0)
    boots = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(200))
    return statistics.median(diffs), boots[4], boots[-5]


def report_time(samples: dict[str, list[float]]) -> str:
    """The table printed for the time measurement."""
    med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
    bare, base = med["baseline"], med[STOCK]
    out = [f"CPU time per turn, {len(samples['baseline'])} cycles (medians; added to the bare turn)", ""]
    out.append(f"{'variant':<15} {'µs/turn':>9} {'added µs':>9} {'ratio':>7}")
    out += [f"{k:<15} {v:9.0f} {v - bare:9.0f} {v / bare:7.3f}" for k, v in med.items()]
    ours, lo, hi = _paired(samples, "full", "ag2_both")
    logs, _, _ = _paired(samples, "full", "full_no_logs")
    debug, _, _ = _paired(samples, "full_debug", "full")
    out += [
        "",
        f"agentops layer (full - ag2_both, paired by cycle): +{ours:.0f} µs (95% interval {lo:.0f} .. {hi:.0f}), "
        f"{ours / bare * 100:.2f}% of this run's bare turn",
        f"  = {ours / base * 100:.2f}% of a bare turn on AG2's stock call models (target {TARGET_SHARE * 100:.2f}%), "
        f"{ours / base * REFERENCE_TURN_US:.0f} µs at the reference speed (target {TARGET_US:.0f} µs): "
        f"{'met' if ours / base <= TARGET_SHARE else 'NOT met'}",
        f"  of which the JSON turn line: +{logs:.0f} µs; DEBUG lines per model call add +{debug:.0f} µs",
    ]
    return "\n".join(out)


# -- instructions ----------------------------------------------------------------------------------


def _ir_child_run(out_dir: str, n1: int, n2: int) -> None:
    """Inside valgrind: warm up once, then fork one child per (variant, turn count)."""
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the forked children
    variants, clear = _variants(sink)
    _warm_up(variants)
    pids = []
    for name, agent in variants.items():
        for n in (n1, n2):
            clear()
            pid = os.fork()
            if pid == 0:
                ag2.stream.build_model = _build_model_for(name)
                asyncio.run(_turns(agent, n))
                os._exit(0)
            os.waitpid(pid, 0)
            pids.append(f"{name} {n} {pid}")
    Path(out_dir, "children.txt").write_text("\n".join(pids))


def measure_instructions(n1: int, n2: int) -> dict[str, float]:
    """Instructions per turn of every variant (valgrind's cachegrind, no cache simulation)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={tmp}/cg.%p",
            sys.executable,
            __file__,
            "--ir-child",
            tmp,
            str(n1),
            str(n2),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        counts: dict[tuple[str, int], int] = {}
        for line in Path(tmp, "children.txt").read_text().splitlines():
            name, n, pid = line.split()
            summary = next(s for s in Path(tmp, f"cg.{pid}").read_text().splitlines() if s.startswith("summary:"))
            counts[(name, int(n))] = int(summary.split()[1])
    names = dict.fromkeys(k for k, _ in counts)
    return {k: (counts[(k, n2)] - counts[(k, n1)]) / (n2 - n1) for k in names}


def report_instructions(per_turn: dict[str, float], bare_us: float | None) -> str:
    """The table printed for the instruction count."""
    base = per_turn[STOCK]
    out = ["Instructions per turn (cachegrind; exact, independent of load)", ""]
    out.append(f"{'variant':<15} {'kIr/turn':>10} {'added kIr':>10} {'% of bare':>10}")
    out += [
        f"{k:<15} {v / 1e3:10.1f} {(v - base) / 1e3:10.1f} {(v - base) / base * 100:10.2f}" for k, v in per_turn.items()
    ]
    share = (per_turn["full"] - per_turn["ag2_both"]) / base
    logs = (per_turn["full"] - per_turn["full_no_logs"]) / base
    debug = (per_turn["full_debug"] - per_turn["full"]) / base
    here = f", {share * bare_us:.0f} µs at this run's bare turn of {bare_us:.0f} µs" if bare_us else ""
    out += [
        "",
        f"agentops layer (full - ag2_both): {share * 100:.2f}% of a bare turn on AG2's stock call models "
        f"(target {TARGET_SHARE * 100:.2f}%)",
        f"  = {share * REFERENCE_TURN_US:.0f} µs at the reference speed (target {TARGET_US:.0f} µs){here}: "
        f"{'met' if share <= TARGET_SHARE else 'NOT met'}",
        f"  of which the JSON turn line: {logs * 100:.2f}%; DEBUG lines per model call add {debug * 100:.2f}%",
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3000, help="turns per variant, one of each per cycle")
    parser.add_argument("--instructions", action="store_true", help="also count instructions under valgrind")
    parser.add_argument(
        "--ir-turns", nargs=2, type=int, default=(10, 40), metavar=("N1", "N2"), help="turns of the two counted runs"
    )
    parser.add_argument("--ir-child", nargs=3, metavar=("DIR", "N1", "N2"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ir_child:
        _ir_child_run(args.ir_child[0], int(args.ir_child[1]), int(args.ir_child[2]))
        return
    samples = measure_time(args.cycles)
    print(report_time(samples))
    if args.instructions:
        print()
        bare_us = statistics.median(samples[STOCK]) * 1e6
        print(report_instructions(measure_instructions(*args.ir_turns), bare_us))


if __name__ == "__main__":
    main()
