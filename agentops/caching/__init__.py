"""Response caches for AG2 agents: exact (keyed on the canonical request) and semantic (similarity plus
a consistency check), over in-process, disk (diskcache) or Redis backends, plus intermediate-step caching.

* :class:`ResponseCache` / :class:`CachedModel` — wrap any ``ModelConfig``; hits cost nothing and are
  counted with the tokens and USD they saved. Errors, refusals, side-effect tool calls and guarded
  text are never stored; tenants are isolated unless configured otherwise.
* :func:`semantic_match` — the semantic cache's decision for one pair of questions with the default
  configuration: ``Match(score, hit, reason)``. :class:`SemanticCache` makes the same decision.
* :func:`cached_step` — memoise a plan or a retrieval on the same backends.

Example::

    cache = ResponseCache(DiskBackend(".cache/responses"), ttl_s=600)
    agent = ag2.Agent("support", "Be brief.", config=cache.wrap(model_config("offline")))
    semantic_match("capital of France?", "capital of Germany?")   # Match(..., hit=False, reason=...)
"""

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.caching.backends import CacheBackend, DiskBackend, MemoryBackend, RedisBackend
from agentops.caching.consistency import check_consistent
from agentops.caching.embeddings import (
    HashingEmbedder,
    MiniLMEmbedder,
    PrecomputedEmbedder,
    default_embedder,
    minilm_available,
)
from agentops.caching.exact import CachedModel, CacheStats, ResponseCache, canonical_request, request_key
from agentops.caching.semantic import (
    DEFAULT_THRESHOLD,
    Match,
    MemoryVectorStore,
    RedisVectorStore,
    SemanticCache,
    SemanticHit,
    semantic_match,
)
from agentops.caching.steps import cached_step
from agentops.caching.verifier import PairVerifier, default_verifier, pair_features, question_type

__all__ = [
    "DEFAULT_THRESHOLD",
    "CacheBackend",
    "CacheStats",
    "CachedModel",
    "DiskBackend",
    "HashingEmbedder",
    "Match",
    "MemoryBackend",
    "MemoryVectorStore",
    "MiniLMEmbedder",
    "PairVerifier",
    "PrecomputedEmbedder",
    "RedisBackend",
    "RedisVectorStore",
    "ResponseCache",
    "SemanticCache",
    "SemanticHit",
    "cached_step",
    "canonical_request",
    "check_consistent",
    "default_embedder",
    "default_verifier",
    "minilm_available",
    "pair_features",
    "question_type",
    "request_key",
    "semantic_match",
]
