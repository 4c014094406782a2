"""Benchmark for chapter 02: guardrail scanning, injection detection and budgets.

Measured side by side in one run:

* PII/secret accuracy — ``agentops.guardrails.scan`` vs Microsoft Presidio's pattern recognizers
  (``presidio-analyzer`` with a blank spaCy pipeline: no NER model, only pattern and checksum
  recognizers) vs a naive regex set, on the same public labelled data (``public_sources.yaml``:
  held-out and tuned sources reported apart) and on our own corpus: micro-F1 per source and
  precision/recall/F1 per entity. ``--record`` stores the public numbers for ``guardrails.scorecard()``.
* Speed — µs per 1 KB message (scan, the injection rules alone, detect_injection, both, Presidio), and the
  ratio.
* Linear time — repeated prefixes of every pattern (every catalogue prefix and literal, every detector's
  trigger, every injection rule's opening): 1 MB vs 1 KB.
* Candidate libraries — google-re2 vs ``re`` on the hot patterns; ``phonenumbers`` vs the length table.
* Prompt injection — recall on direct and obfuscated attacks, false-positive rate on benign look-alikes
  (``tests/data/injection_corpus.jsonl``), against a naive pattern list.
* Budgets — middleware overhead per model call, in-process and Redis reserve+settle rates, and
  randomized concurrent trials counting overshoots.

Run: ``python benchmarks/guardrails.py [--quick] [--record] [--only SECTION]`` (Presidio is optional:
``pip install -e '.[bench]'``; without it the Presidio column says so). Redis is optional too
(127.0.0.1:6379). Public records: ``benchmarks/data/build_public.py`` (see ``DATA_CARD.md``).
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
from agentops.guardrails.injection import rule_score  # noqa: E402

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


def md(frame) -> str:
    """A pandas frame as a markdown table (index columns first), without optional dependencies."""
    flat = frame.reset_index()
    cols = [str(c) for c in flat.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in flat.itertuples(index=False):
        lines.append("| " + " | ".join("" if v != v else str(v) for v in row) + " |")  # NaN -> blank
    return "\n".join(lines)


def resolved(fn: Callable[[str], list[Finding]]) -> Callable[[str], list[Finding]]:
    """Presidio reports overlapping results (a URL inside an e-mail); keep the best of each overlap, as its
    anonymizer does, so both scanners are scored on non-overlapping findings."""

    def run(text: str) -> list[Finding]:
        kept: list[Finding] = []
        for f in sorted(fn(text), key=lambda f: (-f.score, f.start - f.end)):
            if all(f.end <= k.start or f.start >= k.end for k in kept):
                kept.append(f)
        return sorted(kept, key=lambda f: f.start)

    return run


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
    """CPU seconds per message (median of repeated passes)."""
    for m in msgs[:5]:
        fn(m)
    samples = []
    start = time.process_time()
    while True:
        t0 = time.process_time()  # CPU time: waiting for a core on a shared machine is not counted
        for m in msgs:
            fn(m)
        samples.append((time.process_time() - t0) / len(msgs))
        if time.process_time() - start > min_seconds and len(samples) >= 3:
            break
    return statistics.median(samples)


def bench_accuracy(record: bool) -> None:
    """Micro-F1 per source and entity, agentops vs Presidio vs a naive regex set, held-out vs tuned."""
    from agentops.guardrails import evaluation as sc

    presidio = presidio_scanner()
    scanners = {"agentops": scan, "naive regex": naive_scan}
    if presidio is not None:
        scanners["presidio"] = resolved(presidio)
    supported = {"presidio": SHARED}
    own = load("pii_corpus.jsonl")
    print("\n## Accuracy per source (micro-F1; precision / recall / F1 per entity)\n")
    print("status: held-out = patterns written without reading this source's errors (an estimate);")
    print("tuned = errors read and fixed (a regression check, not an estimate).")
    if presidio is None:
        print("Presidio is not installed (pip install -e '.[bench]'): its column is skipped.")
    frame = sc.measure(scanners, supported=supported)
    own_rows = []
    for name, fn in scanners.items():
        ents = [*SHARED, "SECRET"] if name != "presidio" else SHARED
        own_rows.extend(sc._rows(score_scanner(own, fn, ents), {"name": "own_corpus", "status": "tuned"}, name))
    import pandas as pd

    frame = pd.concat([frame, pd.DataFrame(own_rows)], ignore_index=True)
    if frame[frame["source"] != "own_corpus"].empty:
        print("(no public records here: run benchmarks/data/build_public.py with clones of the repositories")
        print(" listed in agentops/guardrails/data/public_sources.yaml)")
    micro = frame[frame["entity"] == "micro"].pivot_table(
        index=["status", "source"], columns="scanner", values="f1", aggfunc="first"
    )
    print("\n### micro-F1 per source\n")
    print(md(micro.round(3)))
    per = frame[frame["entity"] != "micro"].copy()
    per["cell"] = per.apply(lambda r: f"{r.precision:.2f} / {r.recall:.2f} / {r.f1:.2f} (n={r.support})", axis=1)
    table = per.pivot_table(index=["status", "source", "entity"], columns="scanner", values="cell", aggfunc="first")
    print("\n### per source and entity: precision / recall / F1 (support)\n")
    print(md(table.fillna("not supported")))
    _held_out_lines(frame, sc.public_sources())
    if record:
        public = frame[frame["source"] != "own_corpus"]
        if not public.empty:
            sc.record(public[public["scanner"] != "naive regex"])
            print(f"\nrecorded to {sc.RECORDED.relative_to(ROOT)}")


def _held_out_lines(frame, sources) -> None:
    """One line per public source: the PII target on held-out PII sources, the first held-out score of each."""
    first = {s["name"]: s for s in sources}
    ours = frame[(frame["entity"] == "micro") & (frame["scanner"] == "agentops")]
    print()
    for _, r in ours.sort_values(["status", "source"]).iterrows():
        src = first.get(r.source, {})
        secret_only = src.get("entities") == ["SECRET"]
        line = f"{r.status} {'secret' if secret_only else 'PII'} source {r.source}: agentops micro-F1 {r.f1:.3f}"
        line += f" (P {r.precision:.3f} / R {r.recall:.3f}, n={r.support})"
        if r.status == "held-out" and not secret_only:
            line += " — " + ("meets" if r.f1 >= 0.90 else "BELOW") + " the 0.90 target"
        fs = src.get("first_score")
        if fs:
            line += f"; first scored held-out: {fs['f1']:.3f} (P {fs['precision']:.3f} / R {fs['recall']:.3f})"
        print(line)


def _has_re2() -> bool:
    from agentops.guardrails import injection

    return injection._NEEDLE_SET is not None


def bench_speed() -> None:
    rows = load("pii_corpus.jsonl")
    presidio = presidio_scanner()
    print("\n## Speed (1 KB messages)\n")
    speeds: dict[str, dict[str, float]] = {}
    for kind in ("typical", "dense"):
        msgs = messages(rows, dense=kind == "dense", n=200 if kind == "typical" else 150)
        fns: dict[str, Callable[[str], object]] = {
            "agentops.scan": scan,
            "rule_score (rules alone)": rule_score,
            "detect_injection": detect_injection,
            "scan + detect_injection": lambda m: (scan(m), detect_injection(m)),
            "naive regex": naive_scan,
        }
        if presidio is not None:
            fns["presidio (blank spaCy)"] = presidio
        for name, fn in fns.items():
            sub = msgs if "presidio" not in name else msgs[:60]
            speeds.setdefault(name, {})[kind] = time_scan(fn, sub, 2.0 if "presidio" in name else 1.0)
    re2_note = "installed (rule pre-checks in one pass)" if _has_re2() else "not installed"
    print(f"CPU µs per message; google-re2 {re2_note}")
    print("| scanner | µs / 1 KB (typical) | µs / 1 KB (dense) |")
    print("|---|---:|---:|")
    for name, sp in speeds.items():
        print(f"| {name} | {sp['typical'] * 1e6:,.1f} | {sp['dense'] * 1e6:,.1f} |")
    if presidio is not None:
        for kind in ("typical", "dense"):
            ratio = speeds["presidio (blank spaCy)"][kind] / speeds["agentops.scan"][kind]
            print(f"\nscan speed-up over Presidio ({kind} messages): {ratio:,.0f}× (target ≥ 50×)")
    both = speeds["scan + detect_injection"]["typical"] * 1e6
    print(f"typical 1 KB message scanned and classified: {both:.0f} µs (target < 100 µs)")
    rules = speeds["rule_score (rules alone)"]
    print(
        f"of which the injection rules (rule_score): {rules['typical'] * 1e6:.0f} µs typical, "
        f"{rules['dense'] * 1e6:.0f} µs dense; the rest of detect_injection is the classifier"
    )


def _adversarial_units() -> list[str]:
    from agentops.guardrails import SECRET_FORMATS

    units = set()
    for f in SECRET_FORMATS:
        units.update(f.prefixes)
        units.update(f.literals)
    units.update([
        "@", "a@", ":", "::", "://", "http://", "www.", "eyJ", "eyJa.eyJb.", "1", "1 ", "1.", "1-", "+1 ", "(",
        "4111 ", "password=", "password: ", 'api_key="', '"', "'", "%40", "[at]", "x:", "a:b@", "--password ",
        "Bearer ", "authorization: basic ", "my password is ", "AAAA", "ab12", "DE89 ", "fe80:", "0:", "a.",
        "é", "\u200b", "１", "-----BEGIN PRIVATE KEY-----\n", "ssn ", "tel:+", "x ",
    ])  # fmt: skip
    return sorted(units)


_INJECTION_UNITS = [
    "![a](http://x?a=", "ignore ", "ignore all previous ", "you are now ", "<|im_start|>", "`", "```",
    "i g n o r e ", "system: ", "a ", "aGVsbG8gd29y", "reveal your ", "send the api key to ", "\n",
    "## system: you ", "x", "pretend to be ", "[inst]", "developer mode ", "@",
]  # fmt: skip


def _best(fn: Callable[[str], object], s: str, reps: int) -> float:
    """Least CPU time of this process over ``reps`` calls: on a shared machine, wall-clock time also
    counts the time the process waited for a core, which made long inputs look superlinear."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        fn(s)
        best = min(best, time.process_time() - t0)
    return best


def bench_linearity(big: int) -> None:
    """Repeated prefixes of every pattern at 1 KB, 64 KB and ``big``: the cost must grow in proportion.

    Two ratios are printed: big / 1 KB (the issue's yardstick, ideal big/1 KB) and big / 64 KB (ideal
    big/64 KB). A quadratic detector shows up in the second as a ratio near its square; per-call
    overhead and cache effects at 1 KB only move the first.
    """
    small, mid = 1024, 64 * 1024
    print(f"\n## Linear time: {big // 1024} KB vs 64 KB vs 1 KB of adversarial input (CPU time)\n")
    for label, fn, units in (
        ("scan", scan, _adversarial_units()),
        ("detect_injection", detect_injection, _INJECTION_UNITS),
    ):
        rows = []
        for u in units:
            s1, s2, s3 = ((u * (n // len(u) + 1))[:n] for n in (small, mid, big))
            t1, t2, t3 = _best(fn, s1, 5), _best(fn, s2, 2), _best(fn, s3, 2)
            rows.append((t3 / t2, t3 / t1, u, t1, t3))
        rows.sort(reverse=True)
        growth = rows[0][0]
        vs_1kb = max(r[1] for r in rows)
        slowest = max(r[4] for r in rows)
        print(
            f"{label}: {len(rows)} repeated units; worst {big // 1024} KB / 64 KB {growth:.1f}× "
            f"(ideal {big / mid:.0f}×); worst {big // 1024} KB / 1 KB {vs_1kb:,.0f}× (ideal {big / small:,.0f}×); "
            f"slowest {big // 1024} KB input {slowest:.2f} s"
        )
        print("| unit | 1 KB µs | big s | big/64 KB | big/1 KB |\n|---|---:|---:|---:|---:|")
        for g, r1, u, t1, t3 in rows[:6]:
            print(f"| {u!r} | {t1 * 1e6:,.0f} | {t3:.2f} | {g:.1f}× | {r1:,.0f}× |")
        verdict = "linear" if growth <= 2 * big / mid else "NOT LINEAR"
        print(f"{label}: {verdict} (growth from 64 KB within 2× of proportional)\n")


def bench_engines() -> None:
    """google-re2 and phonenumbers, measured for the two jobs they were candidates for."""
    print("\n## Candidate libraries\n")
    import re as std_re

    from agentops.guardrails import _numbers, _secrets, scanners

    patterns = {
        "digit runs": _numbers._RUN,
        "token prefixes": _secrets._PREFIX_RX,
        "secret key words": _secrets._KEY_HIT,
        "base64 tokens": scanners._B64_TOKEN,
    }
    text = messages(load("pii_corpus.jsonl"), dense=False, n=50)
    try:
        import re2
    except ImportError:
        print("google-re2 not installed: skipped")
    else:
        print("| pattern | re µs/KB | re2 µs/KB |\n|---|---:|---:|")
        for name, rx in patterns.items():
            a = time_scan(lambda m, rx=rx: list(rx.finditer(m)), text, 0.3)
            try:
                r2 = re2.compile(rx.pattern)
            except Exception:  # re2 has no lookaround or backreferences
                print(f"| {name} | {a * 1e6:,.1f} | unsupported (lookaround) |")
                continue
            b = time_scan(lambda m, r2=r2: list(r2.finditer(m)), text, 0.3)
            print(f"| {name} | {a * 1e6:,.1f} | {b * 1e6:,.1f} |")
        print(
            "(each pattern over a whole 1 KB message; the scanner runs the two alternations only inside long\n"
            " tokens and in the 48 characters before an assignment, and keeps Python's re: re2 refuses the\n"
            f" lookarounds the boundary checks use, and bounded quantifiers already keep {std_re.__name__} linear)"
        )
    try:
        import phonenumbers
    except ImportError:
        print("phonenumbers not installed: skipped")
        return
    cands = ["+44 20 7946 0958", "+33 6 12 34 56 78", "+971 50 123 4567", "+81 90-1234-5678", "+49 1512 3456789"]
    pn = time_scan(lambda c: phonenumbers.is_valid_number(phonenumbers.parse(c, None)), cands, 0.5)
    ours = time_scan(lambda c: _numbers._international_ok("".join(ch for ch in c if ch.isdigit())), cands, 0.5)
    print(
        f"\nphone validation per candidate: phonenumbers {pn * 1e6:,.0f} µs vs calling-code length table "
        f"{ours * 1e6:,.2f} µs ({pn / ours:,.0f}×); the table is built from the same libphonenumber metadata"
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
                    (Line(f"trial{seed}-{t}|global", f"trial{t}", "global", caps[t], -1, -1, 0.0, amount, 0),),
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
        row["account"]: row["spent_nano_usd"] for row in ledger.accounts() if row["account"].startswith(f"trial{seed}-")
    }
    overshoots = sum(
        1
        for t in range(n_trials)
        if spent.get(f"trial{seed}-{t}|global", 0) > caps[t] or spent.get(f"trial{seed}-{t}|global", 0) != charged[t]
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
        print(f"Redis not reachable ({exc.__class__.__name__}): Redis rows skipped (start it with `make services`)")
        return
    client.flushdb()
    ledger = RedisLedger(client, prefix="bench")
    rps = _pairs_per_second(ledger, 5_000)
    print(f"Redis ledger: {rps:,.0f} reserve+settle pairs/s from one client (each pair = 2 Lua round trips)")
    ov, g, r = _trials(RedisLedger(client, prefix="bench"), 2_000, 8, seed=2)
    print(f"Redis: {ov} overshoots in 2,000 randomized concurrent trials (8 threads; {g:,} granted, {r:,} refused)")
    client.flushdb()


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="chapter 02 benchmark")
    ap.add_argument("--record", action="store_true", help="write the public scorecard for the chapter")
    ap.add_argument("--quick", action="store_true", help="256 KB instead of 1 MB for the linearity check")
    ap.add_argument("--only", choices=["accuracy", "speed", "linear", "engines", "injection", "budgets"])
    args = ap.parse_args()
    print("# agentops chapter 02 benchmark")
    print(f"python {sys.version.split()[0]} on {sys.platform}")
    sections = {
        "accuracy": lambda: bench_accuracy(args.record),
        "speed": bench_speed,
        "linear": lambda: bench_linearity(256 * 1024 if args.quick else 1024 * 1024),
        "engines": bench_engines,
        "injection": bench_injection,
        "budgets": bench_budgets,
    }
    for name, fn in sections.items():
        if args.only in (None, name):
            fn()


if __name__ == "__main__":
    main()
