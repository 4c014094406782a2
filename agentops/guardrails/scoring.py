"""Scoring a scanner on a labelled corpus, and Presidio as a drop-in scanner for comparison."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from agentops.errors import MissingDependencyError
from agentops.guardrails._types import ENTITY_TYPES, Finding
from agentops.guardrails.scanners import scan

__all__ = ["PresidioScanner", "score_scanner"]


def score_scanner(
    rows: Iterable[Mapping[str, Any]],
    scanner: Callable[[str], Sequence[Finding]] | None = None,
    entities: Sequence[str] | None = None,
) -> Any:
    """Precision and recall of a scanner on a labelled corpus, per entity type and micro-averaged.

    Each row is ``{"text": ..., "entities": [{"type", "start", "end"}, ...]}`` (the format of
    ``tests/data/pii_corpus.jsonl``). Matching, one finding at a time in the scanner's order:

    * a finding that overlaps a not-yet-matched gold span of its type is a true positive (and matches it);
    * a finding that overlaps only gold spans of its type that are already matched is a *split*: another
      piece of a secret already found (a key id and its secret inside one labelled whole string, a
      password and the URL around it) — counted neither as a true nor as a false positive, so a span
      found in two pieces scores as one found span, whatever granularity the labels use;
    * any other finding is a false positive; every gold span left unmatched is a false negative.

    Findings and gold spans of types outside ``entities`` are ignored.

    Returns:
        A pandas DataFrame indexed by entity type plus ``"micro"``, with columns support, tp, fp, fn,
        precision, recall and f1 (0.0 where undefined).
    """
    import pandas as pd

    scanner = scanner or scan
    kinds = list(entities or ENTITY_TYPES)
    wanted = set(kinds)
    counts = {k: [0, 0, 0] for k in kinds}  # tp, fp, fn
    for row in rows:
        gold = [g for g in row["entities"] if g["type"] in wanted]
        matched: list[Mapping[str, Any]] = []
        for f in scanner(row["text"]):
            if f.entity_type not in wanted:
                continue
            hit = next((g for g in gold if g["type"] == f.entity_type and _overlap(f, g)), None)
            if hit is not None:
                gold.remove(hit)
                matched.append(hit)
                counts[f.entity_type][0] += 1
            elif not any(g["type"] == f.entity_type and _overlap(f, g) for g in matched):
                counts[f.entity_type][1] += 1
        for g in gold:
            counts[g["type"]][2] += 1
    counts["micro"] = [sum(c[i] for c in counts.values()) for i in range(3)]
    rows_out = []
    for kind, (tp, fp, fn) in counts.items():
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows_out.append(
            {
                "entity": kind,
                "support": tp + fn,
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "precision": precision,
                "recall": recall,
                "f1": f1,
            }
        )
    return pd.DataFrame(rows_out).set_index("entity")


def _overlap(f: Finding, g: Mapping[str, Any]) -> bool:
    return f.start < g["end"] and g["start"] < f.end


class PresidioScanner:
    """Use Microsoft Presidio's analyzer as the scanner (``pip install presidio-analyzer``).

    Runs with a blank spaCy pipeline (no model download), so only Presidio's pattern and
    checksum recognizers take part; results are mapped onto :class:`Finding`.

    Args:
        entities: Presidio entity names to ask for (default: the ones :func:`scan` reports, minus SECRET).
        score_threshold: drop results scored below this.
    """

    def __init__(self, entities: Sequence[str] | None = None, score_threshold: float = 0.0) -> None:
        try:
            import spacy
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import SpacyNlpEngine
        except ImportError:
            raise MissingDependencyError(
                "PresidioScanner needs presidio-analyzer: pip install 'ag2-agentops-cookbook[bench]'"
            ) from None

        class _BlankEngine(SpacyNlpEngine):
            def __init__(self) -> None:
                super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])

            def load(self) -> None:
                self.nlp = {"en": spacy.blank("en")}

        self.entities = list(entities or [e for e in ENTITY_TYPES if e != "SECRET"])
        self.score_threshold = score_threshold
        self.engine = AnalyzerEngine(nlp_engine=_BlankEngine(), supported_languages=["en"])

    def __call__(self, text: str) -> list[Finding]:
        results = self.engine.analyze(text, language="en", entities=self.entities, score_threshold=self.score_threshold)
        return sorted(
            (Finding(r.entity_type, r.start, r.end, float(r.score)) for r in results),
            key=lambda f: (f.start, f.end),
        )
