"""Benchmark: the shipped prompt-injection classifier on text it never saw, its size and its speed.

Prints, in one run:

* the model: file size, buckets, rows per training source;
* cost: import + load time against importing ``agentops.guardrails`` alone, µs per 1 KB message for the classifier, the
  rules and ``detect_injection`` (rules + classifier), and the 1 MB / 1 KB cost ratio on adversarial
  inputs (a capped, linear-time policy keeps it far under 1,000×);
* the hand-written held-out slice (``training/injection/heldout.jsonl``, never used for training or
  tuning) and the project's own corpus (``tests/data/injection_corpus.jsonl``, never trained on): per
  kind, rules alone vs classifier alone vs both, and ROC-AUC / TPR at FPR ≤ 5 % and ≤ 10 %;
* the cross-source table (every public source scored by models that never saw it): recomputed when
  ``--data`` (or ``$INJECTION_DATA``) names the dataset written by ``training/injection/build_dataset.py``
  and scikit-learn is installed (the ``train`` extra), otherwise the stored table
  ``agentops/guardrails/data/injection_crossval.json`` with the commits of ``training/injection/DATA_CARD.md``;
* the candidates compared (``training/injection/candidates.json``, measured by
  ``training/injection/compare_candidates.py``).

Run: ``python benchmarks/injection_classifier.py [--data /tmp/injection.jsonl] [--baseline OLD.py OLD.npz]``
(``--baseline``: e.g. ``git show main:agentops/guardrails/classifier.py > /tmp/old.py`` and the same for
the weights, to print the before/after ratio measured in one run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentops.guardrails import classifier as clf  # noqa: E402
from agentops.guardrails import detect_injection, scan  # noqa: E402
from agentops.guardrails.injection import rule_score  # noqa: E402

TRAINING = ROOT / "training" / "injection"
MESSAGE_1KB = (
    "Hi! I'm planning a week in Lisbon in October with my partner and two kids (8 and 11). We like "
    "museums, easy hikes and good food, but not long drives. Could you suggest a day-by-day plan with "
    "one main activity per day, a lunch spot near each, and a rainy-day alternative? We'll stay near "
    "Baixa and use public transport. Also, what should we know about tickets for the trams and the "
    "Santa Justa lift, and is the Oceanarium worth it for the younger one? Please keep each day short "
    "and mention rough costs in euros. Finally, any tips for eating out with kids late in the evening, "
    "since restaurants there seem to open for dinner around 8pm? Thanks a lot for the help, this is our "
    "first family trip abroad and we want it to be relaxed rather than packed. One more thing: we are "
    "vegetarian, so please flag places with good vegetarian options, and tell us which day trip outside "
    "the city (Sintra or Cascais?) would be easier with children by train. Obrigado!"
)


def _time_per_call(fn, arg, min_seconds: float = 0.5) -> float:
    """CPU seconds per call (process time: less inflated by other processes than wall time)."""
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < min_seconds:
        fn(arg)
        n += 1
    return (time.process_time() - t0) / n


def _best_of(fn, arg, repeats: int = 5) -> float:
    return min(_time_per_call(fn, arg, 0.2) for _ in range(repeats))


def _subprocess_seconds(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return float(out.stdout.strip().splitlines()[-1])


def model_section() -> None:
    path = Path(str(clf.resources.files("agentops") / "data" / clf.WEIGHTS_FILE))
    m = clf.load()
    print("## Shipped model")
    print(f"file {path.name}: {path.stat().st_size / 1024:.0f} KiB, {len(m.weights)} buckets, bias {m.bias:+.3f}")
    print("rows per training source:", ", ".join(f"{k} {v}" for k, v in m.meta.get("trained_on", {}).items()))
    print()


def cost_section() -> None:
    print("## Cost")
    base = min(_subprocess_seconds("import agentops.guardrails") for _ in range(3))
    load = min(_subprocess_seconds("import agentops.guardrails.classifier as c; c.load()") for _ in range(3))
    print(
        f"import agentops.guardrails: {base * 1e3:.0f} ms; plus the classifier module and its weights: "
        f"{(load - base) * 1e3:+.0f} ms ({load / base:.2f}x)"
    )
    clf.score("warm up")
    msg = MESSAGE_1KB[:1024]
    t_clf = _best_of(clf.score, msg)
    t_rules = _best_of(rule_score, msg)
    t_both = _best_of(detect_injection, msg)
    t_all = _best_of(lambda m: (scan(m), detect_injection(m)), msg)
    print(
        f"1 KB message (CPU time, best of 5): classifier {t_clf * 1e6:.0f} µs, rules {t_rules * 1e6:.0f} µs, "
        f"detect_injection {t_both * 1e6:.0f} µs (classifier / rules = {t_clf / t_rules:.2f}x)"
    )
    verdict = "met" if t_all < 100e-6 else "not met"
    print(f"target: scan + detect_injection per 1 KB message {t_all * 1e6:.0f} µs (< 100 µs: {verdict})")
    for name, unit in (("repeated markdown-image prefix", "![a](http://x?"), ("repeated 'ignore '", "ignore "),
                       ("random letters and spaces", None)):  # fmt: skip
        if unit is None:
            rng = np.random.default_rng(0)
            big = "".join(rng.choice(list("abcdefgh  "), 1_000_000))
        else:
            big = unit * (1_000_000 // len(unit))
        small = big[:1000]
        r = _time_per_call(clf.score, big, 1.0) / _time_per_call(clf.score, small)
        print(f"classifier cost 1 MB / 1 KB, {name}: {r:.0f}x (limit 1000x; capped at {clf.MAX_CHARS} chars)")
    print()


def baseline_section(module: Path, weights: Path) -> None:
    """Same-run A/B: another version of the classifier module (e.g. ``git show main:...``) and its weights."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("baseline_classifier", module)
    base = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = base  # dataclasses look their module up
    spec.loader.exec_module(base)
    before, after = base.LinearModel.read(weights), clf.load()
    msg = MESSAGE_1KB[:1024]
    before.score(msg), after.score(msg)
    t = {"before": [], "after": []}
    for _ in range(7):  # interleaved, so both see the same machine load
        t["before"].append(_time_per_call(before.score, msg, 0.2))
        t["after"].append(_time_per_call(after.score, msg, 0.2))
    b, a = min(t["before"]), min(t["after"])
    print(f"## Against the baseline {module}")
    print(
        "classifier.score per 1 KB message, CPU time best of 7 interleaved: "
        f"{b * 1e6:.0f} µs -> {a * 1e6:.0f} µs ({b / a:.2f}x)"
    )
    print()


def _rates(pos: np.ndarray, neg: np.ndarray) -> str:
    from sklearn.metrics import roc_auc_score  # only for the AUC; the rest is numpy

    def tpr_at(fpr: float) -> float:
        t = np.sort(neg)[::-1][int(np.floor(fpr * len(neg)))]
        return float(np.mean(pos > t))

    auc = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    return f"AUC {auc:.3f}, TPR@FPR≤5% {tpr_at(0.05):.2f}, TPR@FPR≤10% {tpr_at(0.10):.2f}"


def slice_section(title: str, path: Path, kind_key: str) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scores = {
        "rules": np.array([rule_score(r["text"])[0] for r in rows]),
        "classifier": np.array([clf.score(r["text"]) for r in rows]),
        "both": np.array([detect_injection(r["text"]).score for r in rows]),
    }
    y = np.array([r["label"] for r in rows])
    print(f"## {title} ({np.sum(y == 1)} attacks, {np.sum(y == 0)} benign)")
    print("| kind | label | n | rules | classifier | rules + classifier |")
    print("|---|---|---|---|---|---|")
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        groups[(r["label"], r.get(kind_key, ""))].append(i)
    for (label, kind), idx in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        word = "caught" if label else "flagged"
        cells = [f"{np.mean(s[idx] >= clf.THRESHOLD):.0%} {word}" for s in scores.values()]
        print(f"| {kind} | {'attack' if label else 'benign'} | {len(idx)} | " + " | ".join(cells) + " |")
    for name, s in scores.items():
        print(f"{name}: {_rates(s[y == 1], s[y == 0])}")
    print()


def crossval_section(data: Path | None) -> None:
    print("## Cross-source evaluation (every number from a model that never saw the source)")
    if data is not None:
        sys.path.insert(0, str(TRAINING))
        import train  # needs the train extra (scikit-learn)

        rows = train.load(data)
        x = train.featurize([r["text"] for r in rows])
        table = train.crossval(rows, x, train.clipped([r["text"] for r in rows]))
        print(f"recomputed from {data}")
    else:
        table = json.loads((ROOT / "agentops" / "guardrails" / "data" / "injection_crossval.json").read_text())
        print("stored table (pass --data or set INJECTION_DATA to recompute); sources and commits:")
        for line in (TRAINING / "DATA_CARD.md").read_text().splitlines():
            if line.startswith("| ") and re.search(r"`[0-9a-f]{40}`", line):
                print("  " + line)
    print()
    print(
        "| source | kind | attacks | benign | ROC-AUC | TPR@FPR≤5% | TPR@FPR≤10% | TPR@0.5 | FPR@0.5 | FPR@0.7 "
        "| rules TPR@FPR≤10% | rules+classifier TPR@FPR≤10% |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = {"attack + benign": 0, "attack": 1, "benign": 2}
    for name, r in sorted(table["sources"].items(), key=lambda kv: (order[kv[1]["kind"]], kv[0])):
        c, rules, both = r["classifier"], r["rules"], r["both"]

        def f(d: dict, k: str) -> str:
            return f"{d[k]:.2f}" if k in d else ""

        print(
            f"| {name} | {r['kind']} | {r.get('n_attack', '')} | {r['n_benign']} | {f(c, 'auc')} | "
            f"{f(c, 'tpr_fpr05')} | {f(c, 'tpr_fpr10')} | {f(c, 'tpr_at_threshold')} | {f(c, 'fpr_at_threshold')} | "
            f"{f(c, 'fpr_at_tool_threshold')} | {f(rules, 'tpr_fpr10')} | {f(both, 'tpr_fpr10')} |"
        )
    for name, r in sorted(table["sources"].items()):
        if "family_held_out" in r:  # stricter: its sibling source was left out of training too
            c, both = r["family_held_out"]["classifier"], r["family_held_out"]["both"]
            print(
                f"{name} with {', '.join(r.get('siblings', [])) or 'its sibling'} held out too: ROC-AUC "
                f"{c['auc']:.2f}, TPR@FPR≤5% {c['tpr_fpr05']:.2f}, TPR@FPR≤10% {c['tpr_fpr10']:.2f} "
                f"(rules + classifier {both['tpr_fpr10']:.2f})"
            )
    print(f"attack-only sources: benign side = held-out folds {table['folds']} (mean over folds)")
    print()


def candidates_section() -> None:
    path = TRAINING / "candidates.json"
    if not path.exists():
        return
    print("## Candidates (measured by training/injection/compare_candidates.py)")
    print("| candidate | on disk | import + load | µs / message | held-out ROC-AUC | held-out TPR@FPR≤10% | note |")
    print("|---|---|---|---|---|---|---|")
    for c in json.loads(path.read_text()):
        print(
            f"| {c['name']} | {c['install_mb']:,.1f} MB | {c['load_s']:.2f} s | {c['us_per_message']:,.0f} | "
            f"{c['heldout_auc']:.3f} | {c['heldout_tpr_fpr10']:.2f} | {c.get('note', '')} |"
        )
    print("(on disk: numpy + weights for the linear model, numpy being a default dependency already; the whole")
    print(" `pip install --target` tree for the others. Times from the run that wrote candidates.json.)")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=os.environ.get("INJECTION_DATA") or None)
    ap.add_argument(
        "--baseline",
        type=Path,
        nargs=2,
        metavar=("CLASSIFIER_PY", "WEIGHTS_NPZ"),
        help="time another version of agentops/guardrails/classifier.py and its weights in the same run",
    )
    args = ap.parse_args()
    model_section()
    cost_section()
    if args.baseline:
        baseline_section(*args.baseline)
    slice_section("Hand-written held-out slice", TRAINING / "heldout.jsonl", "kind")
    slice_section(
        "Project corpus (tests/data/injection_corpus.jsonl)", ROOT / "tests" / "data" / "injection_corpus.jsonl", "kind"
    )
    crossval_section(Path(args.data) if args.data else None)
    candidates_section()


if __name__ == "__main__":
    main()
