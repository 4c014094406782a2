"""Circuit breakers: transitions on a simulated clock, counting rules, Redis-shared state."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.errors import ConfigError, RateLimitError, ServerError
from agentops.listeners import BREAKER
from agentops.models import OfflineModel
from agentops.resilience import Breakers, BreakerSettings, CircuitBreaker, CircuitOpen, RedisBreakerStore
from agentops.resilience.breaker import MemoryBreakerStore, on_acquire, on_record


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def _fail() -> None:
    raise ServerError("503")


async def _ok() -> str:
    return "ok"


async def test_closed_open_half_open_closed_on_a_simulated_clock() -> None:
    clock, events = Clock(), []
    breaker = CircuitBreaker(
        "openai/gpt",
        BreakerSettings(failure_threshold=3, reset_timeout_s=10),
        clock=clock,
        listeners=[lambda k, p: events.append((k, p["from"], p["to"], p["at"]))],
    )
    for _ in range(2):
        with pytest.raises(ServerError):
            await breaker.call(_fail)
    assert breaker.state == "closed"
    await breaker.call(_ok)  # a success resets the consecutive count
    for _ in range(3):
        with pytest.raises(ServerError):
            await breaker.call(_fail)
    assert breaker.state == "open"
    clock.t = 4.0
    with pytest.raises(CircuitOpen) as info:
        await breaker.call(_ok)
    assert info.value.retry_after == 6.0 and not info.value.retryable and "openai/gpt" in str(info.value)
    clock.t = 10.0
    with pytest.raises(ServerError):  # the probe fails: open again, timer restarted
        await breaker.call(_fail)
    assert breaker.state == "open"
    clock.t = 20.0
    assert await breaker.call(_ok) == "ok"
    assert breaker.state == "closed"
    assert events == [
        (BREAKER, "closed", "open", 0.0),
        (BREAKER, "open", "half_open", 10.0),
        (BREAKER, "half_open", "open", 10.0),
        (BREAKER, "open", "half_open", 20.0),
        (BREAKER, "half_open", "closed", 20.0),
    ]
    first = breaker.transitions[0]
    assert (first.at, first.source, first.target) == (0.0, "closed", "open")
    assert breaker.counts == {"allowed": 8, "rejected": 1, "success": 2, "failure": 6, "ignored": 0}


async def test_half_open_lets_a_bounded_number_of_probes_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        "m", BreakerSettings(failure_threshold=1, reset_timeout_s=1, success_threshold=2), clock=clock
    )
    with pytest.raises(ServerError):
        await breaker.call(_fail)
    clock.t = 1.0
    gate = asyncio.Event()

    async def slow_ok() -> str:
        await gate.wait()
        return "ok"

    probe = asyncio.create_task(breaker.call(slow_ok))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen):  # one probe in flight is the limit
        await breaker.call(_ok)
    gate.set()
    assert await probe == "ok" and breaker.state == "half_open"  # 1 of 2 successes
    await breaker.call(_ok)
    assert breaker.state == "closed"


async def test_only_retryable_failures_count() -> None:
    breaker = CircuitBreaker("m", BreakerSettings(failure_threshold=2), clock=Clock())

    async def bad_request() -> None:
        raise ConfigError("bad request")

    for _ in range(5):
        with pytest.raises(ConfigError):
            await breaker.call(bad_request)
    assert breaker.state == "closed" and breaker.counts["ignored"] == 5

    async def limited() -> None:
        raise RateLimitError("429", retry_after=1)

    for _ in range(2):
        with pytest.raises(RateLimitError):
            await breaker.call(limited)
    assert breaker.state == "open"


def test_breakers_registry_names_by_provider_and_model() -> None:
    breakers = Breakers(BreakerSettings(failure_threshold=1))
    a = breakers.for_model(OfflineModel("offline-1"))
    assert a is breakers.get("offline/offline-1") and breakers.states() == {"offline/offline-1": "closed"}
    with pytest.raises(ConfigError, match="failure_threshold"):
        BreakerSettings(failure_threshold=0)


async def test_registry_transitions_are_merged_in_time_order() -> None:
    clock = Clock()
    breakers = Breakers(BreakerSettings(failure_threshold=1, reset_timeout_s=5), clock=clock)
    with pytest.raises(ServerError):
        await breakers.get("b").call(_fail)
    clock.t = 1.0
    with pytest.raises(ServerError):
        await breakers.get("a").call(_fail)
    assert [(t.breaker, t.at) for t in breakers.transitions()] == [("b", 0.0), ("a", 1.0)]
    assert breakers.states() == {"b": "open", "a": "open"}


# -- one state machine, every store ----------------------------------------------------------------

OPS = st.lists(st.tuples(st.sampled_from(["acquire", "success", "failure", "ignored"]), st.floats(0, 5)), max_size=40)


def _replay(ops, s: BreakerSettings) -> list[str]:
    state, now, seen = {"state": "closed", "failures": 0, "opened_at": 0.0, "probes": 0, "successes": 0}, 0.0, []
    for op, dt in ops:
        now += dt
        if op == "acquire":
            state, _, _ = on_acquire(state, now, s)
        else:
            state, _ = on_record(state, op, now, s)
        due = state["state"] == "open" and now - state["opened_at"] >= s.reset_timeout_s
        seen.append("half_open" if due else state["state"])  # what CircuitBreaker.state reports
    return seen


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_state_machine_invariants(ops) -> None:
    s = BreakerSettings(failure_threshold=3, reset_timeout_s=4, half_open_max_calls=2)
    state, now = {"state": "closed", "failures": 0, "opened_at": 0.0, "probes": 0, "successes": 0}, 0.0
    for op, dt in ops:
        now += dt
        before = state["state"]
        if op == "acquire":
            state, allowed, change = on_acquire(state, now, s)
            assert allowed == (state["state"] != "open") or state["probes"] == s.half_open_max_calls
            if state["state"] == "closed":
                assert allowed
        else:
            state, change = on_record(state, op, now, s)
        assert 0 <= state["failures"] < s.failure_threshold and 0 <= state["probes"] <= s.half_open_max_calls
        if change:
            assert change[0] == before or change == ("open", "half_open")
        if state["state"] == "open":
            assert state["opened_at"] <= now


@pytest.mark.redis
async def test_redis_store_matches_memory_store(redis_client, redis_url) -> None:
    import random

    s = BreakerSettings(failure_threshold=2, reset_timeout_s=3)
    rng = random.Random(7)
    ops = [(rng.choice(["acquire", "success", "failure", "ignored"]), rng.uniform(0, 2)) for _ in range(60)]
    store = RedisBreakerStore(redis_url, prefix="test:breaker:")
    try:
        seen: dict[str, list[str]] = {}
        for label, backend in (("memory", MemoryBreakerStore()), ("redis", store)):
            clock = Clock()
            breaker = CircuitBreaker("shared", s, store=backend, clock=clock)
            seen[label] = []
            for op, dt in ops:
                clock.t += dt
                if op == "acquire":
                    with contextlib.suppress(CircuitOpen):
                        await breaker.acquire()
                else:
                    await breaker.record(op)
                seen[label].append(breaker.state)
        assert seen["redis"] == seen["memory"] == _replay(ops, s)
        assert {"open", "half_open", "closed"} <= set(seen["redis"])
    finally:
        await store.close()


@pytest.mark.redis
async def test_two_processes_share_one_circuit_through_redis(redis_client, redis_url) -> None:
    clock = Clock()
    s = BreakerSettings(failure_threshold=4, reset_timeout_s=30)
    stores = [RedisBreakerStore(redis_url, prefix="test:breaker:") for _ in range(2)]
    try:
        workers = [CircuitBreaker("openai/gpt", s, store=st_, clock=clock) for st_ in stores]

        async def hammer(b: CircuitBreaker) -> None:
            for _ in range(2):
                with pytest.raises(ServerError):
                    await b.call(_fail)

        await asyncio.gather(*(hammer(b) for b in workers))  # 4 failures in total, 2 per worker
        with pytest.raises(CircuitOpen):
            await workers[0].call(_ok)
        with pytest.raises(CircuitOpen):
            await workers[1].call(_ok)
        assert redis_client.hget("test:breaker:openai/gpt", "state") == b"open"
        assert 0 < redis_client.ttl("test:breaker:openai/gpt") <= 86_400
    finally:
        for store in stores:
            await store.close()
