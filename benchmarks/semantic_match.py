"""Semantic-match precision/recall on public paraphrase pairs (MRPC), with and without the consistency check.

Data: the Microsoft Research Paraphrase Corpus (see benchmarks/DATA_CARD.md for source, commit and
licence). The files are not committed; point ``AGENTOPS_PARAPHRASE_DIR`` at the folder holding
``msr_paraphrase_train.txt`` and ``msr_paraphrase_test.txt``. The threshold is chosen on a train sample
(lowest threshold whose precision ≥ 0.95 with the check on) and reported on the whole test split.

Run: ``python benchmarks/semantic_match.py [--train-sample 800]``
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

DATA = Path(os.environ.get("AGENTOPS_PARAPHRASE_DIR", "../shared/data/paraphrase"))


def load(name: str) -> list[tuple[int, str, str]]:
    path = DATA / name
    if not path.exists():
        sys.exit(f"missing {path}: set AGENTOPS_PARAPHRASE_DIR (see benchmarks/DATA_CARD.md)")
    with path.open(encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [(int(r[0]), r[3], r[4]) for r in rows if len(r) == 5]


def scores(embedder, pairs):
    a = embedder.embed([p[1] for p in pairs])
    b = embedder.embed([p[2] for p in pairs])
    return (a * b).sum(1)


def pr(labels, sims, consistent, thr, use_check):
    pred = sims >= thr
    if use_check:
        pred &= consistent
    tp = int((pred & labels).sum())
    fp = int((pred & ~labels).sum())
    fn = int((~pred & labels).sum())
    return (tp / (tp + fp) if tp + fp else 1.0), tp / (tp + fn)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-sample", type=int, default=800)
    args = ap.parse_args()
    train = load("msr_paraphrase_train.txt")
    train = [train[i] for i in np.random.default_rng(0).permutation(len(train))[: args.train_sample]]
    test = load("msr_paraphrase_test.txt")
    grid = np.round(np.arange(0.50, 0.991, 0.01), 2)
    for emb in (MiniLMEmbedder(), HashingEmbedder()):
        t0 = time.perf_counter()
        s_train, s_test = scores(emb, train), scores(emb, test)
        per_sentence_ms = 1000 * (time.perf_counter() - t0) / (2 * (len(train) + len(test)))
        c_train = np.array([check_consistent(a, b)[0] for _, a, b in train])
        c_test = np.array([check_consistent(a, b)[0] for _, a, b in test])
        y_train = np.array([p[0] == 1 for p in train])
        y_test = np.array([p[0] == 1 for p in test])
        ok = [t for t in grid if pr(y_train, s_train, c_train, t, True)[0] >= 0.95]
        thr = float(min(ok)) if ok else 0.99
        p_on, r_on = pr(y_test, s_test, c_test, thr, True)
        p_off, r_off = pr(y_test, s_test, c_test, thr, False)
        print(f"{emb.name}: {per_sentence_ms:.1f} ms/sentence (batched 32, this machine)")
        print(f"  threshold chosen on {len(train)} train pairs: {thr:.2f}")
        print(f"  MRPC test ({len(test)} pairs, {int(y_test.sum())} paraphrases):")
        print(f"    with consistency check:    precision {p_on:.3f}  recall {r_on:.3f}")
        print(f"    similarity only:           precision {p_off:.3f}  recall {r_off:.3f}")
        best = max((t for t in grid), key=lambda t: (pr(y_test, s_test, c_test, t, False)[0] >= 0.95, -t))
        print(
            f"    similarity only, lowest threshold with test precision ≥ 0.95: {best:.2f} "
            f"(recall {pr(y_test, s_test, c_test, best, False)[1]:.3f})"
        )
        rows = [(t, *pr(y_test, s_test, c_test, t, True), *pr(y_test, s_test, c_test, t, False)) for t in grid]
        np.savetxt(
            f"/tmp/semantic_pr_{emb.dim}.csv",
            rows,
            delimiter=",",
            fmt="%.4f",
            header="threshold,p_check,r_check,p_sim,r_sim",
        )


if __name__ == "__main__":
    main()
