"""The cross-source scorecard: how the scanner does on labelled data, one source at a time.

Sources are listed in ``data/public_sources.yaml`` with their repository, commit, licence and a
``status``: *held-out* (patterns written without reading this source's errors: an estimate for text
nobody here wrote) or *tuned* (errors were read and fixed: a regression check); ``first_score`` keeps
the numbers a source gave when it was first scored, before anyone read its errors. Findings are matched
to labels by :func:`~agentops.guardrails.score_scanner` (overlap; a second piece of a found span is a
split, neither a true nor a false positive). The records are
rebuilt locally by ``benchmarks/data/build_public.py`` into ``benchmarks/data/public/``; where they
are not present (a fresh install, CI), :func:`scorecard` returns the numbers recorded by the last
benchmark run (``data/scorecard.json``), marked ``measured="recorded"``.

Example:
    >>> frame = scorecard()
    >>> sorted(frame["status"].unique())
    ['held-out', 'tuned']
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from agentops.errors import ConfigError
from agentops.guardrails._types import Finding
from agentops.guardrails.scanners import scan
from agentops.guardrails.scoring import score_scanner

__all__ = ["injection_scorecard", "public_sources", "scorecard"]

_DATA = Path(__file__).parent / "data"
RECORDED = _DATA / "scorecard.json"
INJECTION_CROSSVAL = _DATA / "injection_crossval.json"
_SCORERS = ("rules", "classifier", "both")
PUBLIC_DIR_ENV = "AGENTOPS_PUBLIC_DATA"
_COLUMNS = ["source", "status", "scanner", "entity", "support", "precision", "recall", "f1", "measured"]


@cache
def public_sources() -> tuple[dict[str, Any], ...]:
    """The public sources (name, repo, commit, paths, licence, status, entities) from the data card's list."""
    data = yaml.safe_load((_DATA / "public_sources.yaml").read_text(encoding="utf-8"))
    return tuple(data["sources"])


def default_public_dir() -> Path:
    """Where rebuilt records are looked for: ``$AGENTOPS_PUBLIC_DATA``, else ``benchmarks/data/public``."""
    env = os.environ.get(PUBLIC_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "public"


def load_source(name: str, data_dir: str | Path | None = None) -> list[dict[str, Any]] | None:
    """The records of one public source, or None when they have not been rebuilt on this machine."""
    path = Path(data_dir or default_public_dir()) / f"{name}.jsonl"
    if not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _rows(frame: Any, source: Mapping[str, Any], scanner: str) -> list[dict[str, Any]]:
    out = []
    for entity, r in frame.iterrows():
        if r["support"] == 0 and r["fp"] == 0:
            continue
        out.append(
            {"source": source["name"], "status": source["status"], "scanner": scanner, "entity": entity,
             "support": int(r["support"]), "precision": round(float(r["precision"]), 3),
             "recall": round(float(r["recall"]), 3), "f1": round(float(r["f1"]), 3), "measured": "now"}
        )  # fmt: skip
    return out


def measure(
    scanners: Mapping[str, Callable[[str], Sequence[Finding]]] | None = None,
    data_dir: str | Path | None = None,
    supported: Mapping[str, Sequence[str]] | None = None,
) -> Any:
    """Score each scanner on every public source present in ``data_dir`` (one row per source, entity, scanner).

    ``supported`` limits a scanner to the entity types it can find (Presidio has no ``SECRET``).
    """
    import pandas as pd

    scanners = dict(scanners or {"agentops": scan})
    rows: list[dict[str, Any]] = []
    for source in public_sources():
        records = load_source(source["name"], data_dir)
        if records is None:
            continue
        for name, fn in scanners.items():
            entities = [e for e in source["entities"] if supported is None or e in supported.get(name, [e])]
            if entities:
                rows.extend(_rows(score_scanner(records, fn, entities), source, name))
    return pd.DataFrame(rows, columns=_COLUMNS)


def record(frame: Any, path: Path = RECORDED) -> None:
    """Write a measured scorecard as the recorded one (the benchmark does this with ``--record``)."""
    rows = frame.assign(measured="recorded").to_dict(orient="records")
    path.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def scorecard(data_dir: str | Path | None = None, *, scanner: str | None = None) -> Any:
    """Per-source, per-entity precision/recall/F1 of the scanner (and of Presidio, where recorded).

    Measured now for the sources whose public records are present (``benchmarks/data/build_public.py``),
    the numbers recorded by the last benchmark run for the others. ``status`` separates held-out sources
    from tuned ones.

    Args:
        data_dir: where the rebuilt records are (default: :func:`default_public_dir`).
        scanner: keep only this scanner's rows (``"agentops"``, ``"presidio"``).

    Raises:
        ConfigError: no records here and no recorded scorecard either.
    """
    import pandas as pd

    frame = measure(data_dir=data_dir)
    if frame.empty:
        if not RECORDED.is_file():
            raise ConfigError(
                "no public records and no recorded scorecard; run benchmarks/data/build_public.py, then "
                "python benchmarks/guardrails.py --record"
            )
        frame = pd.DataFrame(json.loads(RECORDED.read_text(encoding="utf-8")), columns=_COLUMNS)
    elif RECORDED.is_file():
        # other scanners (Presidio) come from the recording: they are slow to load; so do the sources whose
        # records are not rebuilt on this machine
        recorded = pd.DataFrame(json.loads(RECORDED.read_text(encoding="utf-8")), columns=_COLUMNS)
        missing = ~recorded["source"].isin(set(frame["source"]))
        frame = pd.concat([frame, recorded[(recorded["scanner"] != "agentops") | missing]], ignore_index=True)
    if scanner is not None:
        frame = frame[frame["scanner"] == scanner]
    return frame.sort_values(["status", "source", "scanner", "entity"]).reset_index(drop=True)


def injection_scorecard(path: str | Path | None = None) -> Any:
    """Prompt-injection detection per public source, every number from a model that never saw it.

    One row per source and scorer (``rules``, ``classifier`` and ``both`` — what
    :func:`~agentops.guardrails.detect_injection` returns). Attack sources give ``auc`` and the true-positive
    rate at the score where the false-positive rate on benign text the model never saw is 5 % and 10 %
    (``tpr_fpr05``, ``tpr_fpr10``) and at the shipped threshold (``tpr_at_threshold``); benign sources give
    their own false-positive rate at the threshold (``fpr_at_threshold``). ``unseen`` is False for the
    sources whose numbers were looked at while the current model was designed (an estimate that is
    optimistic by an unknown amount). Produced by ``training/injection/train.py --crossval`` (the data
    card ``training/injection/DATA_CARD.md`` lists each source's repository, commit and licence).

    Raises:
        ConfigError: the table is missing or is not a cross-source table.
    """
    import pandas as pd

    file = Path(path) if path is not None else INJECTION_CROSSVAL
    try:
        table = json.loads(file.read_text(encoding="utf-8"))
        sources, seen = table["sources"], set(table.get("seen_while_designing", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"no readable cross-source table at {file} ({exc}); rebuild it with "
            "training/injection/train.py --crossval (see training/injection/DATA_CARD.md)"
        ) from None
    rows = []
    for name, entry in sorted(sources.items()):
        for scorer in _SCORERS:
            rates = entry.get(scorer, {})
            rows.append(
                {"source": name, "kind": entry.get("kind"), "unseen": name not in seen, "scorer": scorer,
                 "attacks": entry.get("n_attack", 0), "benign": entry.get("n_benign", 0),
                 **{k: rates.get(k) for k in ("auc", "tpr_fpr05", "tpr_fpr10", "tpr_at_threshold", "fpr_at_threshold")}}
            )  # fmt: skip
    return pd.DataFrame(rows)
