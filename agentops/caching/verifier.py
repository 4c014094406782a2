"""Pair features and a small learned verifier on top of similarity and the consistency check.

Cosine similarity of two sentence vectors says "same topic"; a question cache needs "same answer". Three
cheap signals add to it, each computed from what one forward pass already gives:

* **content-word alignment** — every content word of one question should have a close counterpart in the
  other: exact (lower-cased, crudely stemmed) and contextual (the best cosine between the MiniLM vectors of
  that word's pieces and the other question's words, as in BERTScore). The weakest-aligned word is the
  signal: "capital of France" vs "capital of Germany" aligns every word but one.
* **question type** — what / why / how / how many / when / where / which / who / yes-no must agree.
* **the consistency check's verdicts** (numbers, dates, negation, direction, entities) as separate flags.

:class:`PairVerifier` is a logistic regression over those features (standardised), its weights shipped in
``agentops/data/semantic_verifier.json`` (trained on the medical question pairs and MRPC, never on Quora):
numpy at run time, well under a millisecond a pair. **Measured, it is opt-in** (``semantic_match(...,
verify=True)``): in ``benchmarks/semantic_match.py``'s trained-on → tested-on table (weights and threshold
from some sources, scored on one it never saw) it never beat similarity alone at recall ≥ 0.6 (trained on
the other two sources: QQP 0.68–0.70 against 0.71, MQP 0.92–0.93 against 0.94, MRPC 0.71 against 0.77;
``benchmarks/DATA_CARD.md``). What word overlap means differs by source — medical-pair negatives share
most words, Quora's share few — so weights fitted on one point the wrong way on another; IDF-weighted
overlap and IDF-weighted token alignment were measured too and transferred no better. The contextual
alignment (token vectors from the same MiniLM pass) added at most 1–2 points over the lexical one, so the
shipped weights use the lexical features (``uses_tokens`` false).
Hand-written because the features are the point; the model is 14 weights and a dot product.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agentops.caching.consistency import check_consistent, features
from agentops.errors import ConfigError

__all__ = ["FEATURE_NAMES", "PairVerifier", "default_verifier", "pair_features", "question_type"]

_WEIGHTS = Path(__file__).resolve().parent.parent / "data" / "semantic_verifier.json"


def _split(text: str) -> list[str]:
    return text.split()


_STOP = frozenset(
    _split(
        "a an the of to in on at for from by with about into over as is are was were be been being am do does "
        "did done doing have has had having can could should would will shall may might must i me my mine you "
        "your yours we our us he she it its they them their his her this that these those there here what "
        "which who whom whose when where why how and or but if so than then too very just also any some all "
        "each every get got getting one ones someone something anything thing things way ways good best "
        "really much many s t m ll ve re d"
    )
)
_WH = ("how many", "how much", "how long", "how old", "what", "why", "how", "when", "where", "which", "who")
_AUX = frozenset(_split("is are was were do does did can could should would will shall may might must am have has"))
_WORD = re.compile(r"[a-z0-9]+")

FEATURE_NAMES = (
    "cosine",
    "align_min",  # weakest contextual alignment of any content word, both directions
    "align_mean",  # mean best alignment, the lower direction (BERTScore-like)
    "weak_words",  # content words whose best contextual match is < 0.5, both sides (capped at 5)
    "lex_cover",  # share of content stems found verbatim in the other question, the lower direction
    "lex_missing",  # content stems of either side missing from the other (capped at 8)
    "len_ratio",  # shorter / longer, in words
    "qtype_same",
    "numbers_differ",
    "dates_differ",
    "negation_differs",
    "direction_differs",
    "entities_differ",
    "consistent",
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def question_type(text: str) -> str:
    """The kind of answer a question asks for: a wh-phrase (``how many``, ``why``...), ``yes-no`` or ``other``.

    Example:
        >>> question_type("How many moons does Mars have?"), question_type("Is Mars red?")
        ('how many', 'yes-no')
    """
    low = " ".join(_WORD.findall(text.lower()))
    first = low.split(" ", 1)[0] if low else ""
    hits = [(low.find(w), -len(w), w) for w in _WH if re.search(rf"\b{w}\b", low)]
    if hits and (first not in _AUX or min(hits)[0] < 3):
        return min(hits)[2]
    return "yes-no" if first in _AUX else ("other" if not hits else min(hits)[2])


def _coarse(qtype: str) -> str:
    """what / which / how ask for a description alike ("what is the best way to" = "how do I")."""
    return "open" if qtype in ("what", "which", "how") else qtype


def _words_with_vectors(tokens: list[str], vecs: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Join word pieces (``##``) into words; each word's vector is its pieces' mean, unit length."""
    words: list[tuple[str, list[int]]] = []
    for i, tok in enumerate(tokens):
        if tok.startswith("##") and words:
            words[-1] = (words[-1][0] + tok[2:], [*words[-1][1], i])
        else:
            words.append((tok, [i]))
    out = []
    for word, idx in words:
        if word.isalnum() and word not in _STOP:
            v = vecs[idx].astype(np.float32).mean(0)
            out.append((word, v / max(float(np.linalg.norm(v)), 1e-12)))
    return out


def _alignment(ta: tuple[list[str], np.ndarray], tb: tuple[list[str], np.ndarray]) -> tuple[float, float, int]:
    wa, wb = _words_with_vectors(*ta), _words_with_vectors(*tb)
    if not wa or not wb:
        return (1.0, 1.0, 0) if not wa and not wb else (0.0, 0.0, len(wa) + len(wb))
    sims = np.stack([v for _, v in wa]) @ np.stack([v for _, v in wb]).T
    best_a, best_b = sims.max(1), sims.max(0)
    weak = int((best_a < 0.5).sum() + (best_b < 0.5).sum())
    return float(min(best_a.min(), best_b.min())), float(min(best_a.mean(), best_b.mean())), weak


def pair_features(
    a: str,
    b: str,
    score: float,
    tokens: tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]] | None = None,
) -> np.ndarray:
    """The verifier's inputs for one pair, in :data:`FEATURE_NAMES` order.

    ``score`` is the sentence cosine; ``tokens`` the two texts' word pieces and contextual vectors
    (:meth:`~agentops.caching.embeddings.MiniLMEmbedder.embed_tokens`). Without ``tokens`` the contextual
    alignment falls back to the lexical one (an embedder that has no token vectors).
    """
    sa = {_stem(w) for w in _WORD.findall(a.lower()) if w not in _STOP}
    sb = {_stem(w) for w in _WORD.findall(b.lower()) if w not in _STOP}
    cover = min(len(sa & sb) / len(sa) if sa else 1.0, len(sa & sb) / len(sb) if sb else 1.0)
    missing = min(len(sa ^ sb), 8)
    if tokens is not None:
        align_min, align_mean, weak = _alignment(*tokens)
    else:
        align_min, align_mean, weak = float(cover == 1.0), cover, missing
    na, nb = len(a.split()), len(b.split())
    fa, fb = features(a), features(b)
    ok, why = check_consistent(fa, fb)
    return np.array(
        [
            score,
            align_min,
            align_mean,
            min(weak, 5),
            cover,
            missing,
            min(na, nb) / max(na, nb, 1),
            float(_coarse(question_type(a)) == _coarse(question_type(b))),
            float(fa.numbers != fb.numbers or fa.units != fb.units),
            float(fa.dates != fb.dates),
            float(fa.negated != fb.negated),
            float(bool(fa.direction and fb.direction and fa.direction != fb.direction)),
            float(why.startswith("entities")),
            float(ok),
        ],
        np.float64,
    )


@dataclass(frozen=True)
class PairVerifier:
    """Logistic regression over :func:`pair_features`: ``probability`` that a cached answer fits.

    ``mean``/``scale`` standardise the features; ``threshold`` is the probability a hit needs. It was
    trained on one embedder's similarities, so it applies only to that embedder (:meth:`applies_to`).
    """

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    trained_on: str = ""
    embedder: str = "all-MiniLM-L6-v2 (numpy)"  # the cosine it was trained on; other embedders skip it
    uses_tokens: bool = False  # trained on contextual alignment (token vectors) rather than lexical

    def applies_to(self, embedder: object) -> bool:
        """True for the embedder whose similarities it was trained on (its ``name``)."""
        return getattr(embedder, "name", None) == self.embedder

    def probability(self, feats: np.ndarray) -> np.ndarray | float:
        """P(same answer) for one feature row or a matrix of rows."""
        z = ((np.asarray(feats, np.float64) - self.mean) / self.scale) @ self.coef + self.intercept
        p = 1.0 / (1.0 + np.exp(-z))
        return float(p) if np.ndim(p) == 0 else p

    def to_json(self, path: str | Path) -> None:
        """Write the weights (the format :meth:`from_json` reads)."""
        data = {
            "features": list(FEATURE_NAMES),
            "coef": [round(float(c), 6) for c in self.coef],
            "intercept": round(float(self.intercept), 6),
            "mean": [round(float(c), 6) for c in self.mean],
            "scale": [round(float(c), 6) for c in self.scale],
            "threshold": round(float(self.threshold), 4),
            "trained_on": self.trained_on,
            "embedder": self.embedder,
            "uses_tokens": self.uses_tokens,
        }
        Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> PairVerifier:
        """Load weights; a file for other features is a :class:`~agentops.errors.ConfigError`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if tuple(data.get("features", ())) != FEATURE_NAMES:
            raise ConfigError(
                f"{path}: verifier weights are for features {data.get('features')}, this version computes "
                f"{list(FEATURE_NAMES)}; retrain with benchmarks/semantic_match.py --train"
            )
        arr = functools.partial(np.array, dtype=np.float64)
        return cls(
            arr(data["coef"]),
            float(data["intercept"]),
            arr(data["mean"]),
            arr(data["scale"]),
            float(data["threshold"]),
            str(data.get("trained_on", "")),
            str(data.get("embedder", cls.embedder)),
            bool(data.get("uses_tokens", False)),
        )


@functools.lru_cache(maxsize=1)
def default_verifier() -> PairVerifier:
    """The shipped verifier (``agentops/data/semantic_verifier.json``)."""
    return PairVerifier.from_json(_WEIGHTS)
