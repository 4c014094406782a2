"""FallbackModel: the order of the chain, degraded answers and their marks, breakers and bulkheads."""

from __future__ import annotations

import asyncio

import ag2
import pytest
from ag2.config import LLMClient, ModelConfig
from ag2.events import ModelMessage, ModelResponse

from agentops.errors import ConfigError, ToolDenied
from agentops.listeners import FALLBACK
from agentops.models import OfflineModel, tool_rule
from agentops.resilience import (
    AnswerCache,
    Breakers,
    BreakerSettings,
    Bulkhead,
    BulkheadFull,
    FallbackExhausted,
    FallbackModel,
    RetryPolicy,
    is_degraded,
    served_by,
)
from agentops.resilience.fallback import CACHED_PREFIX, DEGRADED_ANSWER


def _down(name: str) -> OfflineModel:
    return OfflineModel(name, sleep=False, faults={"server_error": 1.0})


def _up(name: str) -> OfflineModel:
    return OfflineModel(name, sleep=False)


async def _no_wait(seconds: float) -> None:
    return None


def _log():
    events = []
    return events, lambda kind, payload: events.append((kind, payload["step"], payload["model"], payload["outcome"]))


async def test_primary_then_secondary_in_order() -> None:
    events, listener = _log()
    primary, secondary = _down("primary-1"), _up("secondary-1")
    chain = FallbackModel(primary, secondary, retry=RetryPolicy(max_attempts=2, sleep=_no_wait), listeners=[listener])
    reply = await ag2.Agent("a", "Be brief.", config=chain).ask("hi")
    assert reply.body == "Offline answer to: hi" and served_by(reply) == "offline/secondary-1"
    assert not is_degraded(reply) and reply.response.model == "secondary-1"
    assert primary.calls == 2 and secondary.calls == 1
    assert events == [(FALLBACK, 0, "offline/primary-1", "failed"), (FALLBACK, 1, "offline/secondary-1", "served")]
    assert chain.served == {"offline/secondary-1": 1} and chain.steps() == [
        "offline/primary-1",
        "offline/secondary-1",
        "canned",
    ]


async def test_cached_answer_then_canned_reply_both_marked_degraded() -> None:
    events, listener = _log()
    primary = OfflineModel("primary-1", sleep=False)
    cache = AnswerCache()
    chain = FallbackModel(primary, cache=cache, listeners=[listener])
    agent = ag2.Agent("a", "Be brief.", config=chain)
    assert (await agent.ask("returns policy?")).body == "Offline answer to: returns policy?"
    assert cache.lookup("returns policy?") == "Offline answer to: returns policy?"
    chain.models[0].faults = _down("x").faults  # the provider goes down
    cached = await agent.ask("returns policy?")
    assert cached.body == CACHED_PREFIX + "Offline answer to: returns policy?"
    assert is_degraded(cached) and served_by(cached) == "cache" and cached.response.provider == "agentops-fallback"
    canned = await agent.ask("something new")
    assert canned.body == DEGRADED_ANSWER and served_by(canned) == "canned" and is_degraded(canned)
    assert [e[3] for e in events] == ["served", "failed", "served", "failed", "miss", "served"]
    assert [e[2] for e in events][-2:] == ["cache", "canned"]


async def test_canned_reply_after_a_tool_round_reports_what_was_done() -> None:
    model = OfflineModel("primary-1", sleep=False)
    model.add_rule(tool_rule("open_ticket", keywords=["ticket"], arguments={"order_id": 7}))
    ran = []

    def open_ticket(order_id: int) -> str:
        ran.append(order_id)
        model.faults = _down("x").faults  # the provider fails right after the tool ran
        return f"ticket TCK-{order_id} opened"

    cache = AnswerCache()
    chain = FallbackModel(model, cache=cache)
    agent = ag2.Agent("a", "Be brief.", config=chain, tools=[open_ticket])
    reply = await agent.ask("a ticket please")
    assert ran == [7] and is_degraded(reply) and len(cache) == 0
    assert reply.body.startswith(DEGRADED_ANSWER) and "open_ticket: ticket TCK-7 opened" in reply.body


async def test_without_degraded_answer_the_chain_raises() -> None:
    chain = FallbackModel(_down("a-1"), _down("b-1"), degraded=None)
    with pytest.raises(FallbackExhausted, match=r"every model failed \(offline/a-1: ServerError; offline/b-1"):
        await ag2.Agent("a", "Be brief.", config=chain).ask("hi")


async def test_an_open_circuit_skips_the_model_without_calling_it() -> None:
    events, listener = _log()
    primary = _down("primary-1")
    breakers = Breakers(BreakerSettings(failure_threshold=2, reset_timeout_s=60))
    chain = FallbackModel(
        primary,
        _up("secondary-1"),
        retry=RetryPolicy(max_attempts=3, sleep=_no_wait),
        breakers=breakers,
        listeners=[listener],
    )
    agent = ag2.Agent("a", "Be brief.", config=chain)
    await agent.ask("one")
    assert primary.calls == 2 and breakers.states()["offline/primary-1"] == "open"  # 3rd attempt refused
    await agent.ask("two")
    assert primary.calls == 2  # not called at all
    assert events[-2:] == [
        (FALLBACK, 0, "offline/primary-1", "circuit_open"),
        (FALLBACK, 1, "offline/secondary-1", "served"),
    ]


async def test_refusals_are_not_fallen_back_from() -> None:
    class Refusing(ModelConfig):
        provider, model = "policy", "refuser"

        def copy(self, **overrides: object) -> Refusing:
            return self

        def create(self) -> LLMClient:
            async def client(messages, context, **kwargs) -> ModelResponse:
                raise ToolDenied("not allowed")

            return client  # type: ignore[return-value]

    secondary = _up("secondary-1")
    with pytest.raises(ToolDenied):
        await ag2.Agent("a", "Be brief.", config=FallbackModel(Refusing(), secondary)).ask("hi")
    assert secondary.calls == 0


async def test_bulkhead_sends_overflow_to_the_next_model() -> None:
    primary = OfflineModel("primary-1", latency_s=0.05)  # really waits: holds its slot
    secondary = _up("secondary-1")
    chain = FallbackModel(primary, secondary, bulkhead=1, bulkhead_wait_s=0)
    agent = ag2.Agent("a", "Be brief.", config=chain)
    replies = await asyncio.gather(agent.ask("first"), agent.ask("second"))
    assert sorted(served_by(r) for r in replies) == ["offline/primary-1", "offline/secondary-1"]
    bulkhead = chain.bulkheads["offline/primary-1"]
    assert bulkhead.peak == 1 and bulkhead.rejected == 1 and bulkhead.in_flight == 0


async def test_bulkhead_waits_within_its_bound() -> None:
    bulkhead = Bulkhead("dep", 1, max_wait_s=0.01)
    async with bulkhead.slot():
        with pytest.raises(BulkheadFull, match="all 1 slots busy"):
            async with bulkhead.slot():
                pass
    async with bulkhead.slot():
        assert bulkhead.in_flight == 1
    with pytest.raises(ConfigError):
        Bulkhead("dep", 0)


def test_the_same_model_twice_gets_distinct_names_and_bad_input_is_refused() -> None:
    chain = FallbackModel(_up("m-1"), _up("m-1"), cache=AnswerCache())
    assert chain.names == ["offline/m-1", "offline/m-1#2"] and chain.steps()[-2:] == ["cache", "canned"]
    assert chain.provider == "offline" and chain.model == "m-1" and chain.copy() is chain
    with pytest.raises(ConfigError, match="at least one"):
        FallbackModel()
    with pytest.raises(ConfigError, match="overrides"):
        chain.copy(model="x")


def test_answer_cache_is_a_bounded_lru() -> None:
    cache = AnswerCache(max_entries=2)
    cache.store("a", "1")
    cache.store("b", "2")
    assert cache.lookup("a") == "1"  # a is now the most recent
    cache.store("c", "3")
    assert cache.lookup("b") is None and cache.lookup("a") == "1" and len(cache) == 2
    with pytest.raises(ConfigError):
        AnswerCache(max_entries=0)


async def test_a_plain_function_is_a_cache() -> None:
    chain = FallbackModel(_down("a-1"), cache=lambda request: {"hi": "hello (from the FAQ)"}.get(request))
    reply = await ag2.Agent("a", "Be brief.", config=chain).ask("hi")
    assert reply.body == CACHED_PREFIX + "hello (from the FAQ)" and served_by(reply) == "cache"


def test_marks_read_from_responses_too() -> None:
    plain = ModelResponse(ModelMessage("x"))
    assert served_by(plain) is None and not is_degraded(plain) and not is_degraded(ModelResponse())


async def test_answers_about_actions_are_not_cached() -> None:
    model = OfflineModel("primary-1", sleep=False)
    model.add_rule(tool_rule("open_ticket", keywords=["ticket"], arguments={"order_id": 7}))
    cache = AnswerCache()
    agent = ag2.Agent("a", "Be brief.", config=FallbackModel(model, cache=cache), tools=[open_ticket])
    reply = await agent.ask("a ticket please")
    assert reply.body == "open_ticket returned: ticket TCK-7 opened."
    assert len(cache) == 0  # "ticket opened" would be a lie for the next request that gets it
    await agent.ask("what are your opening hours?")
    assert cache.lookup("what are your opening hours?") == "Offline answer to: what are your opening hours?"


def open_ticket(order_id: int) -> str:
    return f"ticket TCK-{order_id} opened"
