"""Benchmark for chapter 02: guardrail scanning, injection detection and budgets.

Measured side by side in one run:

* PII/secret scanning — ``agentops.guardrails.scan`` vs Microsoft Presidio's pattern recognizers
  (``presidio-analyzer`` with a blank spaCy pipeline: no NER model, only pattern and checksum
  recognizers) vs a naive regex set; throughput (MB/s, µs per 1 KB message) on typical and dense
  messages, and per-entity / micro precision, recall and F1 on ``tests/data/pii_corpus.jsonl``.
* Prompt injection — recall on direct and obfuscated attacks, false-positive rate on benign look-alikes
  (``tests/data/injection_corpus.jsonl``), against a naive pattern list.
* Budgets — middleware overhead per model call, in-process and Redis reserve+settle rates, and
  randomized concurrent trials counting overshoots.

Run: ``python benchmarks/guardrails.py`` (Presidio is optional: ``pip install -e '.[bench]'``, or a
separate virtualenv; without it the Presidio column says so). Redis is optional too (127.0.0.1:6379).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentops.budgets import Budget, BudgetExceeded, BudgetMiddleware, InProcessLedger, Line, RedisLedger  # noqa: E402
from agentops.guardrails import ENTITY_TYPES, Finding, detect_injection, scan, score_scanner  # noqa: E402

DATA = ROOT / "tests" / "data"
SHARED = [e for e in ENTITY_TYPES if e != "SECRET"]  # what Presidio can detect

# ------------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------------

_NAIVE = {
    "EMAIL_ADDRESS": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b"),
    "US_SSN": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "CREDIT_CARD": re.compile(r"\b(?:\d{4}[-\s]?){3}\d{4}\b"),
    "PHONE_NUMBER": re.compile(r"\b(?:\+1[-.\s]?)?\(?\d{3}\)?[-.\s]?\d{3}[-.\s]?\d{4}\b"),
    "IP_ADDRESS": re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
    "IBAN_CODE": re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b"),
    "URL": re.compile(r"https?://\S+"),
    "SECRET": re.compile(r"(?i)(?:api[_-]?key|secret|token)\s*[=:]\s*['\"]?[\w-]{20,}['\"]?"),
}


def naive_scan(text: str) -> list[Finding]:
    """The tutorial version: one regex per entity, no validation."""
    return [Finding(t, m.start(), m.end(), 1.0) for t, p in _NAIVE.items() for m in p.finditer(text)]


_NAIVE_INJECTION = [
    re.compile(p, re.I)
    for p in (
        r"ignore\s+(previous|all)\s+instructions",
        r"you\s+are\s+now\s+[\"']?(\w+)[\"']?\s+mode",
        r"system\s*:\s*",
        r"<\|.*?\|>",
        r"\[INST\]",
        r"###\s*(System|Human|Assistant)",
    )
]


def naive_injection(text: str) -> bool:
    return any(p.search(text) for p in _NAIVE_INJECTION)


def presidio_scanner() -> Callable[[str], list[Finding]] | None:
    try:
        from agentops.guardrails import PresidioScanner

        logging.getLogger("tldextract").setLevel(logging.CRITICAL)
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        return PresidioScanner()
    except ImportError:
        return None


# ------------------------------------------------------------------------------------------------
# Accuracy and speed
# ------------------------------------------------------------------------------------------------


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


def accuracy(fn: Callable[[str], list[Finding]], rows: list[dict], entities: list[str]) -> dict[str, tuple]:
    scores = score_scanner(rows, fn, entities)
    return {e: tuple(scores.loc[e, ["precision", "recall", "f1"]]) for e in [*entities, "micro"]}


def messages(rows: list[dict], dense: bool, n: int = 200, seed: int = 0) -> list[str]:
    """1 KB messages: typical = ordinary prose carrying 1–2 corpus sentences; dense = corpus only."""
    rng = random.Random(seed)
    prose = (
        "Thanks for the quick reply. I checked the dashboard again this morning and the numbers look "
        "consistent with what we discussed in the planning meeting last week. The team would like to "
        "move the review to Thursday if that works for everyone, and we will share the updated notes "
        "before then. "
    )
    out = []
    for _ in range(n):
        if dense:
            m = ""
            while len(m) < 1024:
                m += rng.choice(rows)["text"] + " "
        else:
            parts = [prose[: rng.randint(200, len(prose))]]
            for _ in range(rng.choice([1, 2])):
                parts.append(rng.choice(rows)["text"])
            m = " ".join(parts)
            while len(m) < 1024:
                m += " " + prose
        out.append(m[:1024])
    return out


def time_scan(fn: Callable[[str], object], msgs: list[str], min_seconds: float = 1.0) -> float:
    """Seconds per message (median of repeated passes)."""
    for m in msgs[:5]:
        fn(m)
    samples = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        for m in msgs:
            fn(m)
        samples.append((time.perf_counter() - t0) / len(msgs))
        if time.perf_counter() - start > min_seconds and len(samples) >= 3:
            break
    return statistics.median(samples)


def bench_scan() -> None:
    rows = load("pii_corpus.jsonl")
    presidio = presidio_scanner()
    scanners: dict[str, Callable[[str], list[Finding]] | None] = {
        "agentops.scan": scan,
        "presidio (blank spaCy)": presidio,
        "naive regex": naive_scan,
    }
    print("\n## PII and secret scanning\n")
    print(
        f"corpus: {len(rows)} messages ({sum(r['kind'] == 'hard_negative' for r in rows)} hard negatives), "
        f"{sum(len(r['entities']) for r in rows)} labelled entities"
    )
    if presidio is None:
        print("Presidio is not installed (pip install presidio-analyzer): its column is skipped.")
    speeds: dict[str, dict[str, float]] = {}
    for kind in ("typical", "dense"):
        msgs = messages(rows, dense=kind == "dense", n=200 if kind == "typical" else 150)
        for name, fn in scanners.items():
            if fn is None:
                continue
            budget = 1.0 if name != "presidio (blank spaCy)" else 2.0
            sub = msgs if name != "presidio (blank spaCy)" else msgs[:60]
            speeds.setdefault(name, {})[kind] = time_scan(fn, sub, budget)
    print("\n| scanner | µs / 1 KB (typical) | MB/s (typical) | µs / 1 KB (dense) | MB/s (dense) |")
    print("|---|---:|---:|---:|---:|")
    for name, sp in speeds.items():
        print(
            f"| {name} | {sp['typical'] * 1e6:,.1f} | {1024 / sp['typical'] / 1e6:,.2f} | "
            f"{sp['dense'] * 1e6:,.1f} | {1024 / sp['dense'] / 1e6:,.2f} |"
        )
    if presidio is not None:
        for kind in ("typical", "dense"):
            ratio = speeds["presidio (blank spaCy)"][kind] / speeds["agentops.scan"][kind]
            print(f"\nspeed-up over Presidio ({kind} messages): {ratio:,.0f}×  (target ≥ 50×)")
        try:  # Presidio's recognizers called directly, without the engine around them
            recs = [
                r
                for r in presidio.engine.registry.recognizers
                if set(r.supported_entities) & set(SHARED) and type(r).__name__ != "SpacyRecognizer"
            ]
            msgs = messages(rows, dense=False, n=60)
            direct = time_scan(lambda m: [r.analyze(m, r.supported_entities, None) for r in recs], msgs, 1.0)
            print(
                f"Presidio recognizers called directly (no engine): {direct * 1e6:,.0f} µs / 1 KB → "
                f"{direct / speeds['agentops.scan']['typical']:,.0f}× slower than agentops.scan"
            )
        except Exception as exc:  # pragma: no cover - depends on Presidio internals
            print(f"(direct recognizer timing skipped: {exc})")
    typical_us = speeds["agentops.scan"]["typical"] * 1e6
    print(f"agentops.scan: {typical_us:.1f} µs per typical 1 KB message (target < 50 µs)")

    print("\n### Accuracy on the corpus (precision / recall / F1)\n")
    acc = {
        name: accuracy(fn, rows, [*SHARED, "SECRET"] if name != "presidio (blank spaCy)" else SHARED)
        for name, fn in scanners.items()
        if fn is not None
    }
    names = list(acc)
    print("| entity | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for e in [*SHARED, "SECRET"]:
        cells = []
        for name in names:
            if e not in acc[name]:
                cells.append("not supported")
            else:
                p, r, f = acc[name][e]
                cells.append(f"{p:.2f} / {r:.2f} / {f:.2f}")
        print(f"| {e} | " + " | ".join(cells) + " |")
    shared = {name: accuracy(fn, rows, SHARED)["micro"] for name, fn in scanners.items() if fn is not None}
    print(
        "| micro (7 shared entities) | "
        + " | ".join(f"{shared[n][0]:.2f} / {shared[n][1]:.2f} / {shared[n][2]:.2f}" for n in names)
        + " |"
    )
    if presidio is not None:
        ok = shared["agentops.scan"][2] >= shared["presidio (blank spaCy)"][2]
        print(
            f"\nmicro-F1 agentops {shared['agentops.scan'][2]:.3f} vs Presidio "
            f"{shared['presidio (blank spaCy)'][2]:.3f}: {'at least Presidio' if ok else 'BELOW Presidio'}"
        )
    print(
        "(Corpus note: synthetic, template-built sentences written alongside the detector; treat the scores "
        "as a regression check, not as a claim about real traffic.)"
    )


def bench_injection() -> None:
    rows = load("injection_corpus.jsonl")
    print("\n## Prompt injection\n")
    print("| detector | direct recall | obfuscated recall | benign false-positive rate | µs / message |")
    print("|---|---:|---:|---:|---:|")
    for name, fn in (
        ("agentops.detect_injection", lambda t: detect_injection(t).flagged),
        ("naive patterns", naive_injection),
    ):
        res: dict[str, list[bool]] = defaultdict(list)
        for r in rows:
            res[r["kind"]].append(bool(fn(r["text"])))
        per = time_scan(fn, [r["text"] for r in rows], 0.5)
        rate = {k: sum(v) / len(v) for k, v in res.items()}
        print(
            f"| {name} | {rate['direct']:.1%} ({sum(res['direct'])}/{len(res['direct'])}) | "
            f"{rate['obfuscated']:.1%} ({sum(res['obfuscated'])}/{len(res['obfuscated'])}) | "
            f"{rate['benign']:.1%} ({sum(res['benign'])}/{len(res['benign'])}) | {per * 1e6:,.1f} |"
        )


# ------------------------------------------------------------------------------------------------
# Budgets
# ------------------------------------------------------------------------------------------------


def _pairs_per_second(ledger, n: int) -> float:
    line = Line("ops|global", "ops", "global", -1, -1, -1, 0.0, 10, 5)
    lines = (line,)
    t0 = time.perf_counter()
    for i in range(n):
        key = f"k{i}"
        ledger.reserve(key, lines)
        ledger.settle(key, 7, 4)
    return n / (time.perf_counter() - t0)


def _trials(ledger, n_trials: int, workers: int, seed: int) -> tuple[int, int, int]:
    """Randomized concurrent trials: each trial is a budget with a random cap and 8 random requests;
    the requests of all trials are interleaved across ``workers`` threads. Returns (overshoots,
    granted, refused)."""
    rng = random.Random(seed)
    caps = [rng.randint(20, 200) for _ in range(n_trials)]
    jobs = [(t, j, rng.randint(1, 60), rng.random()) for t in range(n_trials) for j in range(8)]
    rng.shuffle(jobs)
    granted = refused = 0
    charged = defaultdict(int)
    lock = threading.Lock()

    def work(chunk):
        nonlocal granted, refused
        g = r = 0
        local = defaultdict(int)
        for t, j, amount, frac in chunk:
            key = f"t{seed}-{t}-{j}"
            try:
                ledger.reserve(
                    key,
                    (
                        Line(
                            f"trial{seed}-{t}|global", f"trial{t}", "global", caps[t], -1, -1, 0.0, amount, 0
                        ),
                    ),
                )
            except BudgetExceeded:
                r += 1
                continue
            actual = int(amount * frac)
            ledger.settle(key, actual, 0)
            local[t] += actual
            g += 1
        with lock:
            granted += g
            refused += r
            for t, v in local.items():
                charged[t] += v

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, [jobs[i::workers] for i in range(workers)]))
    spent = {
        row["account"]: row["spent_nano_usd"]
        for row in ledger.accounts()
        if row["account"].startswith(f"trial{seed}-")
    }
    overshoots = sum(
        1
        for t in range(n_trials)
        if spent.get(f"trial{seed}-{t}|global", 0) > caps[t]
        or spent.get(f"trial{seed}-{t}|global", 0) != charged[t]
    )
    return overshoots, granted, refused


async def _overhead(n: int = 150) -> tuple[float, float]:
    import ag2

    from agentops.models import OfflineModel

    cfg = OfflineModel(seed=0)
    plain = ag2.Agent("w", "Be brief.", config=cfg)
    budgeted = ag2.Agent(
        "w",
        "Be brief.",
        config=cfg,
        middleware=[
            BudgetMiddleware(
                InProcessLedger(),
                agent="w",
                model=cfg,
                budgets=[
                    Budget("conv", max_usd=10.0),
                    Budget("rpm", scope="agent", max_requests=10**9, window_s=60),
                ],
            )
        ],
    )
    for agent in (plain, budgeted):
        for i in range(10):
            await agent.ask(f"warm {i}")
    times = {}
    for name, agent in (("plain", plain), ("budgeted", budgeted), ("plain2", plain), ("budgeted2", budgeted)):
        t0 = time.perf_counter()
        for i in range(n):
            await agent.ask(f"q {i}")
        times[name] = (time.perf_counter() - t0) / n
    base = min(times["plain"], times["plain2"])
    with_budget = min(times["budgeted"], times["budgeted2"])
    return base, with_budget


def bench_budgets() -> None:
    print("\n## Budgets\n")
    base, with_budget = asyncio.run(_overhead())
    print(
        f"AG2 ask (offline model, one model call): {base * 1e3:.2f} ms; with BudgetMiddleware: "
        f"{with_budget * 1e3:.2f} ms → overhead {max(0.0, with_budget - base) * 1e6:,.0f} µs per call "
        f"({max(0.0, with_budget - base) / base:.1%})"
    )
    mem = _pairs_per_second(InProcessLedger(), 200_000)
    print(f"in-process ledger: {mem:,.0f} reserve+settle pairs/s (target ≥ 100,000)")
    ov, g, r = _trials(InProcessLedger(), 10_000, 8, seed=1)
    print(
        f"in-process: {ov} overshoots in 10,000 randomized concurrent trials (8 threads; {g:,} calls "
        f"granted, {r:,} refused)"
    )
    try:
        import redis

        client = redis.Redis.from_url(os.environ.get("AGENTOPS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
        client.ping()
    except Exception as exc:
        print(
            f"Redis not reachable ({exc.__class__.__name__}): "
            "Redis rows skipped (start it with `make services`)"
        )
        return
    client.flushdb()
    ledger = RedisLedger(client, prefix="bench")
    rps = _pairs_per_second(ledger, 5_000)
    print(f"Redis ledger: {rps:,.0f} reserve+settle pairs/s from one client (each pair = 2 Lua round trips)")
    ov, g, r = _trials(RedisLedger(client, prefix="bench"), 2_000, 8, seed=2)
    print(
        f"Redis: {ov} overshoots in 2,000 randomized concurrent trials "
        f"(8 threads; {g:,} granted, {r:,} refused)"
    )
    client.flushdb()


def main() -> None:
    print("# agentops chapter 02 benchmark")
    print(f"python {sys.version.split()[0]} on {sys.platform}")
    bench_scan()
    bench_injection()
    bench_budgets()


if __name__ == "__main__":
    main()
