"""Semantic-match precision/recall on public question pairs (Quora), with and without the consistency check.

Data: 10,000 labelled Quora question pairs (see benchmarks/DATA_CARD.md for source, commit and licence;
not committed — build it with ``benchmarks/data/build_qqp.py`` and point ``AGENTOPS_PARAPHRASE_DIR`` at
the folder holding ``qqp_10k.tsv``). Pairs with id < 5,000 tune the threshold (the lowest whose
precision with the check is ≥ 0.95); pairs with id ≥ 5,000 report precision and recall at it. The
chapter's own near-miss pairs are reported separately (written for the chapter, not public data).

Run: ``python benchmarks/semantic_match.py [--embeddings CACHE.npz] [--hashing] [--every N]``
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

from agentops.caching.consistency import check_consistent
from agentops.caching.embeddings import HashingEmbedder, MiniLMEmbedder
from agentops.caching.semantic import DEFAULT_THRESHOLD

_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("AGENTOPS_PARAPHRASE_DIR", _ROOT / "benchmarks" / "data" / "public" / "qqp"))
TARGET_P, TARGET_R = 0.95, 0.6


def load() -> list[tuple[int, int, str, str]]:
    """(id, label, question1, question2) rows of the QQP sample."""
    path = DATA / "qqp_10k.tsv"
    if not path.exists():
        sys.exit(f"missing {path}: build it with benchmarks/data/build_qqp.py (see benchmarks/DATA_CARD.md)")
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(int(r["id"]), int(r["is_duplicate"]), r["question1"], r["question2"]) for r in rows]


def similarities(embedder, pairs, cache: str | None) -> np.ndarray:
    if cache and Path(cache).exists():
        z = np.load(cache)
        a, b = z["a"], z["b"]
    else:
        a, b = embedder.embed([p[2] for p in pairs]), embedder.embed([p[3] for p in pairs])
        if cache:
            np.savez(cache, a=a, b=b)
    return (a * b).sum(1)


def pr(labels: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    tp, fp = int((pred & labels).sum()), int((pred & ~labels).sum())
    return (tp / (tp + fp) if tp + fp else 1.0), tp / max(1, int(labels.sum()))


def report(name: str, sims: np.ndarray, pairs, consistent: np.ndarray, per_sentence_ms: float) -> None:
    ids = np.array([p[0] for p in pairs])
    y = np.array([p[1] == 1 for p in pairs])
    tune, test = ids < 5000, ids >= 5000
    grid = np.round(np.arange(0.50, 0.991, 0.01), 2)

    def at(mask, thr, check):
        pred = sims[mask] >= thr
        return pr(y[mask], pred & consistent[mask] if check else pred)

    ok = [t for t in grid if at(tune, t, True)[0] >= TARGET_P]
    thr = float(min(ok)) if ok else 0.99
    print(f"{name}: {per_sentence_ms:.1f} ms/sentence (batched, this machine)")
    print(
        f"  QQP tune split ({int(tune.sum())} pairs): threshold for precision ≥ {TARGET_P} with the check = {thr:.2f}"
    )
    p_on, r_on = at(test, thr, True)
    p_off, r_off = at(test, thr, False)
    met = "met" if p_on >= TARGET_P and r_on >= TARGET_R else "NOT met"
    print(f"  QQP report split ({int(test.sum())} pairs, {int(y[test].sum())} duplicates) at {thr:.2f}:")
    print(
        f"    with consistency check: precision {p_on:.3f}  recall {r_on:.3f}  "
        f"(target P ≥ {TARGET_P} at R ≥ {TARGET_R}: {met})"
    )
    print(f"    similarity only:        precision {p_off:.3f}  recall {r_off:.3f}")
    d_on, d_off = at(test, DEFAULT_THRESHOLD, True), at(test, DEFAULT_THRESHOLD, False)
    print(
        f"    at the library default {DEFAULT_THRESHOLD:.2f}: with check P {d_on[0]:.3f} R {d_on[1]:.3f}; "
        f"similarity only P {d_off[0]:.3f} R {d_off[1]:.3f}"
    )
    rows = [(t, *at(test, t, True), *at(test, t, False)) for t in grid]
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"semantic_pr_qqp_{name.split()[0]}.csv"
    np.savetxt(out, rows, delimiter=",", fmt="%.4f", header="threshold,p_check,r_check,p_sim,r_sim")
    print(f"    precision/recall curve on the report split: {out}")


def near_miss(embedder) -> None:
    from agentops.scenarios.cost_performance import NEAR_MISS_PAIRS

    a = embedder.embed([p[1] for p in NEAR_MISS_PAIRS])
    b = embedder.embed([p[2] for p in NEAR_MISS_PAIRS])
    sims = (a * b).sum(1)
    y = np.array([p[0] == 1 for p in NEAR_MISS_PAIRS])
    c = np.array([check_consistent(p[1], p[2])[0] for p in NEAR_MISS_PAIRS])
    on, off = pr(y, (sims >= DEFAULT_THRESHOLD) & c), pr(y, sims >= DEFAULT_THRESHOLD)
    print(
        f"  chapter near-miss pairs ({len(y)}, written for the chapter) at {DEFAULT_THRESHOLD:.2f}: "
        f"with check P {on[0]:.2f} R {on[1]:.2f}; similarity only P {off[0]:.2f} R {off[1]:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embeddings", help="cache the MiniLM embeddings of the pairs in this .npz")
    ap.add_argument("--hashing", action="store_true", help="also measure the weight-free hashing embedder")
    ap.add_argument("--every", type=int, default=1, help="use pairs whose id is a multiple of N (a slow machine)")
    args = ap.parse_args()
    pairs = [p for p in load() if p[0] % args.every == 0]
    t0 = time.perf_counter()
    consistent = np.array([check_consistent(a, b)[0] for _, _, a, b in pairs])
    check_ms = 1000 * (time.perf_counter() - t0) / len(pairs)
    print(f"consistency check: {check_ms:.2f} ms/pair; refuses {100 * (1 - consistent.mean()):.1f}% of all pairs")
    embedders = [(MiniLMEmbedder(), args.embeddings)] + ([(HashingEmbedder(), None)] if args.hashing else [])
    for emb, cache in embedders:
        t0 = time.perf_counter()
        sims = similarities(emb, pairs, cache)
        per = 1000 * (time.perf_counter() - t0) / (2 * len(pairs))
        report(emb.name, sims, pairs, consistent, per)
        near_miss(emb)


if __name__ == "__main__":
    main()
