"""Semantic response cache that refuses to serve a wrong answer.

A hit needs two things: the new question embeds close to a cached one (cosine ≥ ``threshold``), **and**
:func:`~agentops.caching.consistency.check_consistent` finds no disagreement in numbers, units,
dates, negation, comparison direction or entities. :func:`semantic_match` is that decision for one
pair with the default configuration; :class:`SemanticCache` makes the same decision against its
top-``k`` neighbours.

Search is exact: the vectors are L2-normalised rows of one preallocated float32 matrix (doubling when
full, so adding is amortised O(1)); a lookup is one matrix-vector product and an ``argpartition`` for
the top k — no per-entry Python. The product is BLAS's (``@``) up to :data:`BLAS_MAX_ROWS` rows and
``einsum``'s single-threaded loop above. Measured on 2 cores (``benchmarks/cost_performance.py``): at 10k
× 384 a lookup takes 0.56 ms wall and 1.1 ms CPU through BLAS (two threads) against 2.2 ms of both
through ``einsum``; at 100k BLAS spends more CPU than it saves (15 ms wall for 31 ms CPU, against 20 ms
of both), which a shared server pays for. At 10k entries × 384 dims that is a 15 MB scan,
well under the cost of the embedding itself, so an approximate index (HNSW) would add a dependency and
recall loss for no gain at cookbook sizes. float16 storage was measured and rejected: numpy has no fast
float16 product on CPUs (~10× slower than float32).

Stores: :class:`MemoryVectorStore` (one process) and :class:`RedisVectorStore` (entries appended to a
Redis list shared by processes; each process keeps a local matrix mirror and pulls only new rows).

Thread safety: stores guard their matrix with a lock; a cache may be shared by threads and tasks.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentops.caching.consistency import check_consistent
from agentops.caching.embeddings import Embedder, default_embedder
from agentops.caching.verifier import PairVerifier, default_verifier, pair_features
from agentops.errors import ConfigError

__all__ = [
    "DEFAULT_THRESHOLD",
    "Match",
    "MemoryVectorStore",
    "RedisVectorStore",
    "SemanticCache",
    "SemanticHit",
    "semantic_match",
]

#: Chosen on MRPC and QQP, never on MQP (the question source it is scored on unseen); see
#: `benchmarks/semantic_match.py`'s trained-on → tested-on table and benchmarks/DATA_CARD.md.
DEFAULT_THRESHOLD = 0.80
BLAS_MAX_ROWS = 32_768  # see the module docstring: BLAS's product up to here, einsum's loop above


@dataclass(frozen=True)
class Match:
    """The decision for one pair: cosine ``score``, whether it is a ``hit``, and why."""

    score: float
    hit: bool
    reason: str


def _decide(
    a: str,
    b: str,
    score: float,
    threshold: float,
    consistency: bool,
    verifier: PairVerifier | None = None,
    tokens: Any = None,
) -> Match:
    if score < threshold:
        return Match(round(score, 4), False, f"similarity {score:.2f} below threshold {threshold:.2f}")
    if consistency:
        ok, why = check_consistent(a, b)
        if not ok:
            return Match(round(score, 4), False, why)
    if verifier is not None:
        toks = (tokens() if callable(tokens) else tokens) if verifier.uses_tokens else None
        p = verifier.probability(pair_features(a, b, score, toks))
        if p < verifier.threshold:
            return Match(round(score, 4), False, f"verifier: P(same answer) {p:.2f} < {verifier.threshold:.2f}")
        return Match(round(score, 4), True, f"similarity {score:.2f}, consistent, verifier P {p:.2f}")
    return Match(round(score, 4), True, f"similarity {score:.2f} ≥ {threshold:.2f} and consistent")


def _verifier(embedder: Embedder, verify: bool) -> PairVerifier | None:
    """The shipped verifier when asked for and trained on this embedder's similarities, else None."""
    verifier = default_verifier() if verify else None
    return verifier if verifier is not None and verifier.applies_to(embedder) else None


def _pair_tokens(embedder: Embedder, a: str, b: str) -> tuple[np.ndarray, Any]:
    """Sentence rows for a and b, plus their token vectors when the embedder has them (one pass)."""
    if hasattr(embedder, "embed_tokens"):
        rows, toks = embedder.embed_tokens([a, b])
        return rows, (toks[0], toks[1])
    return embedder.embed([a, b]), None


def semantic_match(
    a: str,
    b: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    consistency: bool = True,
    verify: bool = False,
    embedder: Embedder | None = None,
) -> Match:
    """Would a cached answer to ``a`` be served for ``b``? The cache's own decision, for one pair:
    similarity ≥ ``threshold``, the consistency check, and, if ``verify``, the learned pair verifier
    (opt-in: measured on public pairs it did not add precision at useful recall — see
    ``benchmarks/DATA_CARD.md``; it applies to the MiniLM similarities it was trained on only).

    Example:
        >>> semantic_match("What is the capital of France?", "What is the capital of Germany?").hit
        False
    """
    for name, text in (("a", a), ("b", b)):
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"semantic_match: {name} must be a non-empty str, got {text!r}")
    emb = embedder or default_embedder()
    verifier = _verifier(emb, verify)
    if verifier is not None and verifier.uses_tokens:
        vecs, tokens = _pair_tokens(emb, a, b)
    else:
        vecs, tokens = emb.embed([a, b]), None
    return _decide(a, b, float(vecs[0] @ vecs[1]), threshold, consistency, verifier, tokens)


@dataclass(frozen=True)
class _Entry:
    question: str
    answer: str
    tenant: str
    expires_at: float | None


class MemoryVectorStore:
    """Vectors and entries in this process: a growing float32 matrix searched exactly."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._lock = threading.Lock()
        self._matrix = np.zeros((64, dim), np.float32)
        self._entries: list[_Entry] = []

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, vector: np.ndarray, entry: _Entry) -> None:
        """Append one row."""
        with self._lock:
            self._append(vector, entry)

    def _append(self, vector: np.ndarray, entry: _Entry) -> None:
        n = len(self._entries)
        if n == len(self._matrix):
            grown = np.zeros((2 * n, self.dim), np.float32)
            grown[:n] = self._matrix
            self._matrix = grown
        self._matrix[n] = vector
        self._entries.append(entry)

    def top_k(self, vector: np.ndarray, k: int) -> list[tuple[float, _Entry]]:
        """The ``k`` most similar entries, best first."""
        self._refresh()
        with self._lock:
            n = len(self._entries)
            if n == 0:
                return []
            matrix, query = self._matrix[:n], np.asarray(vector, np.float32)
            scores = matrix @ query if n <= BLAS_MAX_ROWS else np.einsum("ij,j->i", matrix, query)
            k = min(k, n)
            idx = np.argpartition(scores, n - k)[n - k :] if k < n else np.arange(n)
            idx = idx[np.argsort(-scores[idx])]
            return [(float(scores[i]), self._entries[i]) for i in idx]

    def _refresh(self) -> None:
        """Pull rows other processes added (no-op in memory)."""

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()


class RedisVectorStore(MemoryVectorStore):
    """Entries in a Redis list shared by processes; each process mirrors the rows it has not seen."""

    def __init__(self, client: Any, dim: int, *, namespace: str = "agentops:semantic") -> None:
        super().__init__(dim)
        self._redis = client
        self._key = f"{namespace}:entries"

    def add(self, vector: np.ndarray, entry: _Entry) -> None:
        """Append one row to Redis (then mirrored locally on the next search)."""
        row = {
            "v": base64.b64encode(np.asarray(vector, np.float32).tobytes()).decode(),
            "q": entry.question,
            "a": entry.answer,
            "t": entry.tenant,
            "e": entry.expires_at,
        }
        self._redis.rpush(self._key, json.dumps(row))

    def _refresh(self) -> None:
        with self._lock:
            start = len(self._entries)
            for raw in self._redis.lrange(self._key, start, -1):
                row = json.loads(raw)
                vec = np.frombuffer(base64.b64decode(row["v"]), np.float32)
                self._append(vec, _Entry(row["q"], row["a"], row["t"], row["e"]))

    def __len__(self) -> int:
        return int(self._redis.llen(self._key))

    def clear(self) -> None:
        """Drop every entry, in Redis and in this process's mirror."""
        self._redis.delete(self._key)
        super().clear()


@dataclass(frozen=True)
class SemanticHit:
    """A lookup result: the ``answer`` (None on a miss), the ``match`` decision and the cached question."""

    answer: str | None
    match: Match
    cached_question: str | None = None


def _guarded(text: str) -> bool:
    """True if the guardrails would redact something in ``text`` (such text is never stored)."""
    from agentops.guardrails import scan

    return bool(scan(text)) or any(tag in text for tag in ("[EMAIL_ADDRESS]", "[SECRET]", "[PHONE_NUMBER]"))


class SemanticCache:
    """Question → answer cache with similarity **and** consistency; per-tenant unless shared.

    Args:
        embedder: defaults to :func:`~agentops.caching.embeddings.default_embedder`.
        threshold: minimum cosine similarity (default :data:`DEFAULT_THRESHOLD`).
        top_k: neighbours checked for consistency, best first.
        consistency: run the consistency check (turn off only to measure what it prevents).
        verify: also run the pair verifier (:mod:`agentops.caching.verifier`) on a consistent candidate
            (off by default: it did not beat similarity + check on public pairs it was not trained on).
        store: a :class:`MemoryVectorStore` (default) or :class:`RedisVectorStore`.
        ttl_s: entries older than this are ignored; ``clock`` is injectable for tests.
        share_across_tenants: serve one tenant's answers to another (off by default).
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        top_k: int = 5,
        consistency: bool = True,
        verify: bool = False,
        store: MemoryVectorStore | None = None,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.time,
        share_across_tenants: bool = False,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}; 0.8 is a safe start")
        if top_k < 1:
            raise ConfigError(f"top_k must be ≥ 1, got {top_k!r}")
        if ttl_s is not None and ttl_s <= 0:
            raise ConfigError(f"ttl_s must be > 0 or None, got {ttl_s!r}")
        self.embedder = embedder or default_embedder()
        self.threshold, self.top_k, self.consistency = threshold, top_k, consistency
        self.verifier = _verifier(self.embedder, verify)
        self.store = store if store is not None else MemoryVectorStore(self.embedder.dim)
        self.ttl_s, self.clock, self.share_across_tenants = ttl_s, clock, share_across_tenants
        self.stats = {"hits": 0, "misses": 0, "refused_by_consistency": 0, "not_stored": 0}
        if self.verifier is not None:
            self.stats["refused_by_verifier"] = 0
        self._lock = threading.Lock()

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def lookup(self, question: str, *, tenant: str = "default", vector: np.ndarray | None = None) -> SemanticHit:
        """Best consistent neighbour above the threshold, or a miss saying why."""
        vec = self.embedder.embed([question])[0] if vector is None else vector
        now = self.clock()
        best: Match | None = None
        for score, entry in self.store.top_k(vec, self.top_k * 4):
            if entry.expires_at is not None and entry.expires_at <= now:
                continue
            if entry.tenant != tenant and not self.share_across_tenants:
                continue
            if score < self.threshold and best is not None:
                break  # best first: nothing further can be a hit
            match = _decide(
                entry.question,
                question,
                score,
                self.threshold,
                self.consistency,
                self.verifier,
                self._tokens(entry, question),
            )
            if match.hit:
                self._count("hits")
                return SemanticHit(entry.answer, match, entry.question)
            if best is None:
                best = match
                if score >= self.threshold:
                    by_verifier = match.reason.startswith("verifier")
                    self._count("refused_by_verifier" if by_verifier else "refused_by_consistency")
        self._count("misses")
        return SemanticHit(None, best or Match(0.0, False, "cache is empty"))

    def _tokens(self, entry: _Entry, question: str) -> Callable[[], Any] | None:
        """Token vectors for the verifier, computed only if a candidate gets that far (one small pass)."""
        if self.verifier is None or not self.verifier.uses_tokens or not hasattr(self.embedder, "embed_tokens"):
            return None
        return lambda: _pair_tokens(self.embedder, entry.question, question)[1]

    def store_answer(self, question: str, answer: str, *, tenant: str = "default") -> bool:
        """Store an answer; False (not stored) when guardrails would redact the question or answer."""
        if _guarded(question) or _guarded(answer):
            self._count("not_stored")
            return False
        vec = self.embedder.embed([question])[0]
        expires = self.clock() + self.ttl_s if self.ttl_s else None
        self.store.add(vec, _Entry(question, answer, tenant, expires))
        return True

    def __len__(self) -> int:
        return len(self.store)
