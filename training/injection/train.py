"""Train the shipped prompt-injection classifier and measure it on sources it never saw.

Usage (needs the ``train`` extra: scikit-learn)::

    python training/injection/build_dataset.py --snapshots DIR --out /tmp/injection.jsonl
    python training/injection/train.py --data /tmp/injection.jsonl \
        --out agentops/data/injection_classifier.npz --crossval agentops/guardrails/data/injection_crossval.json

Features and scoring are the package's own (:mod:`agentops.guardrails.classifier`), so the model is
trained on exactly what it sees at run time. One row per text: the n-grams present in its windows (the
first :data:`TRAIN_WINDOWS`), scaled by 1/sqrt(number present). Sample weights give every source the same total
weight within its class, so a big source does not drown a small one; the sources of one
:data:`FAMILIES` entry (the two password games) share one source's weight, scaled by
:data:`FAMILY_WEIGHT`. Scores in the cross-validation are the run-time ones: every window of every
text, one sparse product per model (:func:`window_matrix`, :func:`window_scores`).

Cross-source evaluation (``--crossval``): no number comes from a source the model was trained on.

* a source with both labels (deepset, BIPIA) is held out whole: train on everything else, test on it;
* an attack-only source A is tested against a fold F of benign-only sources: train without A and
  without F, then TPR on A at the threshold where the FPR on F is 5% / 10%; reported per fold and
  as the mean over the three folds;
* a benign source B is reported with the FPR at the shipped thresholds, averaged over the models
  that did not see it;
* a source with a sibling (:data:`SIBLINGS`) is reported a second time with the sibling held out too.

Evaluation-only sources (licence unclear) are never trained on, not even for the shipped model.

Calibration: the shipped model's bias is shifted by the offset that makes ``THRESHOLD`` flag on average
:data:`TARGET_FPR` of the benign sources' texts, as scored by the cross-validation models that never saw
them (``--skip-crossval`` reuses the offset stored in ``--crossval``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agentops.guardrails import classifier as clf  # noqa: E402

TRAIN_WINDOWS = 4
ALPHA = 1e-4  # L2 penalty of the logistic regression (fitted by averaged SGD)
EPOCHS = 20
TARGET_FPR = 0.01  # mean false-positive rate at THRESHOLD on benign sources the model never saw
BENIGN_FOLDS = (
    ("p3_prompts", "gpteacher_codegen", "alpaca_docs"),
    ("gsm8k", "notinject", "jbb_benign", "chat_bench", "gpteacher_toolformer", "ultrachat", "alpaca_instructions"),
    ("wildguard_benign", "self_instruct", "gpteacher_roleplay", "awesome_chatgpt", "secret_help"),
)
MIXED = ("deepset", "bipia")
# Sources of one family share one source's sample weight (two password games of one vendor).
FAMILIES: dict[str, tuple[str, ...]] = {"password_games": ("gandalf", "mosscap")}
# Reported a second time with the sibling held out too (the stricter never-seen number).
SIBLINGS: dict[str, tuple[str, ...]] = {"gandalf": ("mosscap",), "mosscap": ("gandalf",)}
FAMILY_WEIGHT = {"password_games": 0.5}  # one topic: half a source's weight (more cost deepset)
FAMILY_OF = {s: f for f, members in FAMILIES.items() for s in members}


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _row(data: bytes, head: int, bits: int) -> np.ndarray:
    return clf.distinct(clf._bucket(clf._hashes(data, head)[0], bits)).astype(np.int64)


def _matrix(rows: list[np.ndarray], bits: int) -> sparse.csr_matrix:
    """One row per bucket set, each present bucket scaled by 1/sqrt(number present)."""
    data = [np.full(len(b), 1.0 / np.sqrt(max(len(b), 1)), dtype=np.float32) for b in rows]
    indptr = np.r_[0, np.cumsum([len(b) for b in rows])]
    m = sparse.csr_matrix((np.concatenate(data), np.concatenate(rows), indptr), shape=(len(rows), 1 << bits))
    m.sum_duplicates()
    return m


def featurize(texts: list[str], bits: int = clf.BITS) -> sparse.csr_matrix:
    """One row per text: the buckets present in its first :data:`TRAIN_WINDOWS` windows, scaled by
    1/sqrt(number present) (what :meth:`~agentops.guardrails.classifier.LinearModel.logit` scores)."""
    return _matrix([_row(d[: TRAIN_WINDOWS * clf.WINDOW], clf.HEAD_BYTES, bits) for d in clipped(texts)], bits)


def window_matrix(data: list[bytes], bits: int = clf.BITS) -> tuple[sparse.csr_matrix, np.ndarray]:
    """One row per window exactly as :meth:`LinearModel.logit` scores it, and the text of each window."""
    rows, owner = [], []
    for i, d in enumerate(data):
        for lo, hi in clf.windows(len(d)):
            rows.append(_row(d[lo:hi], clf.HEAD_BYTES if lo == 0 else 0, bits))
            owner.append(i)
    return _matrix(rows, bits), np.array(owner)


def clipped(texts: list[str]) -> list[bytes]:
    """The bytes :func:`agentops.guardrails.classifier.score` classifies, folded once per text."""
    return [clf.clip(clf.fold(t)) for t in texts]


def window_scores(model: clf.LinearModel, xw: sparse.csr_matrix, owner: np.ndarray) -> np.ndarray:
    """Per-text probabilities as :meth:`LinearModel.score` computes them (float16 weights): the
    highest window's logit."""
    w = model.weights.astype(np.float16).astype(np.float32)
    z = np.maximum.reduceat(xw @ w + model.bias, np.r_[0, np.flatnonzero(np.diff(owner)) + 1])
    return 1 / (1 + np.exp(-z))


def weights_for(sources: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each (class, source) pair gets the same total weight; the two classes weigh the same overall.
    Sources of one :data:`FAMILIES` entry share one source's weight, scaled by :data:`FAMILY_WEIGHT`."""
    w = np.zeros(len(labels))
    groups = np.array([FAMILY_OF.get(s, s) for s in sources])
    for label in (0, 1):
        in_class = labels == label
        names = Counter(groups[in_class])
        for name, n in names.items():
            w[in_class & (groups == name)] = FAMILY_WEIGHT.get(name, 1.0) / (n * len(names))
    return w * len(labels) / w.sum()


def fit(x: sparse.csr_matrix, y: np.ndarray, w: np.ndarray) -> clf.LinearModel:
    model = SGDClassifier(loss="log_loss", alpha=ALPHA, max_iter=EPOCHS, tol=None, random_state=0, average=True)
    model.fit(x, y, sample_weight=w)
    meta = {"bits": int(np.log2(x.shape[1])), "gram_bytes": list(clf.GRAM_BYTES), "word_ns": [1, 2], "alpha": ALPHA,
            "head_bytes": clf.HEAD_BYTES}  # fmt: skip
    return clf.LinearModel(model.coef_[0].astype(np.float32), float(model.intercept_[0]), meta)


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """TPR at the lowest threshold whose FPR on ``neg`` is at most ``fpr`` (strictly greater = flagged)."""
    return float(np.mean(pos > _score_at_fpr(neg, fpr)))


def _score_at_fpr(neg: np.ndarray, fpr: float) -> float:
    """The lowest score whose FPR on ``neg`` is at most ``fpr`` (a text scoring above it is flagged)."""
    neg = np.sort(neg)[::-1]
    k = int(np.floor(fpr * len(neg)))
    return float(neg[k]) if k < len(neg) else 0.0


def metrics(pos: np.ndarray, neg: np.ndarray) -> dict:
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return {
        "auc": float(roc_auc_score(y, np.r_[pos, neg])),
        "tpr_fpr05": tpr_at_fpr(pos, neg, 0.05),
        "tpr_fpr10": tpr_at_fpr(pos, neg, 0.10),
        "score_at_fpr05": _score_at_fpr(neg, 0.05),  # the operating points of the two TPR columns
        "score_at_fpr10": _score_at_fpr(neg, 0.10),
        "tpr_at_threshold": float(np.mean(pos >= clf.THRESHOLD)),
        "fpr_at_threshold": float(np.mean(neg >= clf.THRESHOLD)),
    }


def _scorers(p: np.ndarray, rules: np.ndarray) -> dict[str, np.ndarray]:
    """The classifier alone, the rules alone, and both as ``detect_injection`` combines them (max)."""
    return {"classifier": p, "rules": rules, "both": np.maximum(p, rules)}


def _mean(folds: list[dict]) -> dict:
    return {k: float(np.mean([f[k] for f in folds])) for k in folds[0]}


def calibration_offset(benign: dict[str, np.ndarray], target: float) -> float:
    """Logit offset so that, averaged over benign sources (each weighing the same), a fraction
    ``target`` of texts the model never saw reaches :data:`THRESHOLD` (bisection on the offset)."""
    logits = {name: np.log(p / (1 - p)) for name, p in benign.items()}
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        fpr = np.mean([np.mean(z - mid >= 0) for z in logits.values()])
        lo, hi = (mid, hi) if fpr > target else (lo, mid)
    return hi


def _shift(p: np.ndarray, offset: float) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return 1 / (1 + np.exp(-(np.log(p / (1 - p)) - offset)))


def crossval(rows: list[dict], x: sparse.csr_matrix, data: list[bytes]) -> dict:
    """Cross-source table: every score comes from a model trained without the scored source.

    The calibration offset (:func:`calibration_offset`) is chosen here, from benign sources scored by
    models that never saw them, and applied to every model alike; it moves the at-threshold columns
    only (ROC-AUC and TPR at a fixed FPR do not depend on it).
    """
    from agentops.guardrails import injection

    src = np.array([r["source"] for r in rows])
    y = np.array([r["label"] for r in rows])
    trainable = np.array([r["train"] for r in rows])
    rules = np.array([injection.rule_score(r["text"])[0] for r in rows])
    # detect_injection discounts the classifier on short texts about injection: mark them once
    about = np.array([injection._about_injection_discount(r["text"], 1.0) < 1.0 for r in rows])
    cache: dict = {}
    xw, owner = window_matrix(data)

    def scores(held: tuple[str, ...]) -> np.ndarray:
        keep = trainable & ~np.isin(src, held)
        key = keep.tobytes()  # an evaluation-only source leaves the training set as it is
        if key not in cache:
            t0 = time.time()
            model = fit(x[keep], y[keep], weights_for(src[keep], y[keep]))
            cache[key] = window_scores(model, xw, owner)
            print(f"  trained without {', '.join(held)}: {time.time() - t0:.0f}s", file=sys.stderr)
        return cache[key]

    attack_only = [str(s) for s in dict.fromkeys(src[y == 1]) if s not in MIXED]
    unseen_benign: dict = defaultdict(list)
    for name in attack_only:
        for fold in BENIGN_FOLDS:
            for b in fold:
                unseen_benign[b].append(scores((name, *fold))[src == b])
    for name in MIXED:
        unseen_benign[name].append(scores((name,))[(src == name) & (y == 0)])
    offset = calibration_offset({b: np.concatenate(a) for b, a in unseen_benign.items()}, TARGET_FPR)

    def scorers(held: tuple[str, ...]) -> dict[str, np.ndarray]:
        p = _shift(scores(held), offset)
        discounted = np.where(about & (p >= 0.2), p * 0.45, p)
        return {"classifier": p, "rules": rules, "both": np.maximum(discounted, rules)}

    out: dict = {"sources": {}, "folds": [list(f) for f in BENIGN_FOLDS], "offset": offset, "target_fpr": TARGET_FPR}
    for name in MIXED:
        pos, neg = (src == name) & (y == 1), (src == name) & (y == 0)
        entry = {"kind": "attack + benign", "n_attack": int(pos.sum()), "n_benign": int(neg.sum())}
        entry.update({k: metrics(p[pos], p[neg]) for k, p in scorers((name,)).items()})
        out["sources"][name] = entry
    benign: dict = defaultdict(lambda: defaultdict(list))
    for name in attack_only:
        folds: dict = defaultdict(list)
        for fold in BENIGN_FOLDS:
            neg = np.isin(src, fold)
            for scorer, p in scorers((name, *fold)).items():
                folds[scorer].append(metrics(p[(src == name) & (y == 1)], p[neg]))
                for b in fold:
                    benign[b][scorer].append(p[src == b])
        n_benign = int(np.isin(src, sum(BENIGN_FOLDS, ())).sum())
        entry = {"kind": "attack", "n_attack": int(np.sum((src == name) & (y == 1))), "n_benign": n_benign}
        entry.update({scorer: _mean(f) for scorer, f in folds.items()})
        entry["classifier_per_fold"] = folds["classifier"]
        if name in SIBLINGS:  # stricter: its sibling source left out of training too
            family = (name, *SIBLINGS[name])
            entry["siblings"] = list(SIBLINGS[name])
            entry["family_held_out"] = {
                scorer: _mean(
                    [
                        metrics(
                            scorers((*family, *fold))[scorer][src == name],
                            scorers((*family, *fold))[scorer][np.isin(src, fold)],
                        )
                        for fold in BENIGN_FOLDS
                    ]
                )
                for scorer in ("classifier", "both")
            }
        out["sources"][name] = entry
    for name, by_scorer in benign.items():
        entry = {"kind": "benign", "n_benign": int(np.sum(src == name))}
        for scorer, arrays in by_scorer.items():
            p = np.concatenate(arrays)
            entry[scorer] = {
                "fpr_at_threshold": float(np.mean(p >= clf.THRESHOLD)),
                "fpr_at_tool_threshold": float(np.mean(p >= clf.TOOL_RESULT_THRESHOLD)),
            }
        out["sources"][name] = entry
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="dataset written by build_dataset.py")
    ap.add_argument("--out", type=Path, help="write the shipped model here (.npz)")
    ap.add_argument("--crossval", type=Path, help="cross-source table (.json): written, or read when --skip-crossval")
    ap.add_argument("--skip-crossval", action="store_true", help="reuse the stored table's calibration offset")
    args = ap.parse_args(argv)
    rows = load(args.data)
    t0 = time.time()
    x = featurize([r["text"] for r in rows])
    print(f"featurized {len(rows)} texts in {time.time() - t0:.0f}s", file=sys.stderr)
    if args.crossval and not args.skip_crossval:
        table = crossval(rows, x, clipped([r["text"] for r in rows]))
        if args.crossval.is_file():  # the sources looked at while designing are a record, not a measurement
            seen = json.loads(args.crossval.read_text()).get("seen_while_designing", [])
            table["seen_while_designing"] = seen
        args.crossval.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    if args.out:
        keep = np.array([r["train"] for r in rows])
        src = np.array([r["source"] for r in rows])[keep]
        y = np.array([r["label"] for r in rows])[keep]
        model = fit(x[keep], y, weights_for(src, y))
        offset = json.loads(args.crossval.read_text())["offset"] if args.crossval else 0.0
        model = clf.LinearModel(model.weights, model.bias - offset, model.meta)
        model.meta["calibration_offset"] = offset
        model.meta["trained_on"] = dict(sorted(Counter(src).items()))
        model.save(args.out)
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
