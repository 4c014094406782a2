"""Every answer a provider served is booked once — meters, budgets and Prometheus agree.

A served answer that is then refused (tool-call arguments that are not JSON, an answer cut at the
token limit, an empty one) is a *served* call: its tokens are booked, it is counted as malformed, never
as an error. Attempts a retry policy made are booked too, failed ones included, and nothing twice;
an attempt the provider never answered (rate limit, timeout) books nothing.
"""

from __future__ import annotations

import contextlib
import math

import ag2
import pytest
from prometheus_client import CollectorRegistry

from agentops.budgets import Budget, BudgetMiddleware, InProcessLedger
from agentops.errors import MalformedOutputError, ProviderError
from agentops.models import Faults, OfflineModel, SlowModel
from agentops.pricing import register_price
from agentops.resilience import RetryPolicy
from agentops.telemetry import Telemetry
from agentops.toolguard import ToolCallGuard
from agentops.usage import UsageMeter, cost_usd, served_response

CUT = '{"city": "Par'
ran: list[str] = []


def get_weather(city: str) -> str:
    """Weather for a city."""
    ran.append(city)
    return f"sunny in {city}"


async def no_wait(_s: float) -> None:
    return None


def _budget(model, *, agent: str = "ops") -> tuple[InProcessLedger, BudgetMiddleware]:
    ledger = InProcessLedger()
    caps = [Budget("total", scope="global", max_tokens=100_000, max_usd=10.0)]
    return ledger, BudgetMiddleware(ledger, agent=agent, model=model, max_completion_tokens=64, budgets=caps)


def _fake(*replies):
    from agentops.models import model_config
    from agentops.testing import chat_server

    register_price("fake-1", input_per_1k=0.5, output_per_1k=1.5)
    transport = chat_server(list(replies))
    return model_config("compatible", "fake-1", base_url="http://fake/v1", transport=transport, max_tokens=64)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    total = 0.0
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


# -- 1. a call ToolCallGuard answered is served, not an error --------------------------------------------


async def test_a_call_the_guard_answered_is_booked_as_served_and_counted_malformed(allow_model_requests):
    from agentops.testing import chat_completion

    ran.clear()
    cfg = _fake(
        chat_completion(None, tool_calls=[("get_weather", CUT)], finish_reason="length", usage=(20, 64)),
        chat_completion(None, tool_calls=[("get_weather", '{"city": "Paris"}')], usage=(40, 10)),
        chat_completion("It is sunny in Paris.", usage=(60, 6)),
    )
    telemetry, meter = Telemetry(registry=CollectorRegistry()), UsageMeter()
    guard = ToolCallGuard(max_tool_rounds=3, agent="ops", listeners=[telemetry.listener])
    ledger, budget = _budget(cfg)
    agent = ag2.Agent("ops", config=cfg, tools=[get_weather], middleware=[guard, meter.middleware(), budget])
    telemetry.instrument(agent)
    reply = await agent.ask("Weather in Paris?")
    assert reply.body == "It is sunny in Paris." and ran == ["Paris"]
    assert (meter.calls, meter.errors, meter.malformed_calls, meter.tokens) == (3, 0, 1, 84 + 50 + 66)
    assert budget.usage_frame().outcome.tolist() == ["malformed", "ok", "ok"]
    assert ledger.accounts()[0]["spent_tokens"] == 200 and ledger.in_flight() == 0
    r = telemetry.registry
    assert _sample(r, "agentops_malformed_answers_total", agent="ops", model="fake-1") == 1
    assert _sample(r, "ag2_llm_calls_total", outcome="error") == 0
    assert _sample(r, "ag2_llm_calls_total", outcome="success") == 3
    assert math.isclose(_sample(r, "agentops_cost_usd_total", agent="ops"), meter.cost_usd, rel_tol=1e-9)
    assert math.isclose(ledger.accounts()[0]["spent_usd"], meter.cost_usd, abs_tol=1e-9)


async def test_a_malformed_answer_that_is_raised_is_booked_once_everywhere(allow_model_requests):
    from agentops.testing import chat_completion

    cfg = _fake(chat_completion(None, tool_calls=[("get_weather", CUT)], finish_reason="length", usage=(20, 64)))
    telemetry, meter = Telemetry(registry=CollectorRegistry()), UsageMeter()
    ledger, budget = _budget(cfg)
    agent = ag2.Agent("ops", config=cfg, tools=[get_weather], middleware=[meter.middleware(), budget])
    telemetry.instrument(agent)
    with pytest.raises(MalformedOutputError):
        await agent.ask("Weather in Paris?")
    assert (meter.calls, meter.errors, meter.malformed_calls, meter.tokens) == (1, 0, 1, 84)
    assert budget.usage_frame().outcome.tolist() == ["malformed"] and ledger.accounts()[0]["spent_tokens"] == 84
    r = telemetry.registry
    assert _sample(r, "agentops_malformed_answers_total", agent="ops", model="fake-1") == 1
    expected = cost_usd(type("U", (), {"prompt_tokens": 20, "completion_tokens": 64})(), "fake-1")
    assert math.isclose(_sample(r, "agentops_cost_usd_total", agent="ops"), expected, rel_tol=1e-9)
    assert math.isclose(meter.cost_usd, expected, rel_tol=1e-9)


def test_a_meter_counts_a_call_that_failed_unserved_as_an_error() -> None:
    meter = UsageMeter()
    meter.fail()
    assert (meter.calls, meter.errors, meter.malformed_calls, meter.tokens) == (1, 1, 0, 0)


# -- 2. a retry policy inside a budget books every served attempt once ----------------------------------


def _served_tokens(cfg: OfflineModel) -> int:
    return int((cfg.usage.prompt_tokens or 0) + (cfg.usage.completion_tokens or 0))


@pytest.mark.parametrize(("seed", "policy_inside"), [(1, True), (2, True), (3, True), (1, False), (2, False)])
async def test_a_retry_policy_and_a_budget_book_every_served_attempt_once(seed: int, policy_inside: bool) -> None:
    cfg = OfflineModel(seed=seed, faults=Faults(malformed=0.3, empty=0.15, rate_limit=0.15))
    outer, inner = UsageMeter(), UsageMeter()
    ledger, budget = _budget(cfg, agent="w")
    policy = RetryPolicy(max_attempts=3, sleep=no_wait, seed=seed)
    middle = [budget, policy] if policy_inside else [policy, budget]
    agent = ag2.Agent("w", "Be brief.", config=cfg, middleware=[outer.middleware(), *middle, inner.middleware()])
    failed = 0
    for i in range(12):
        try:
            await agent.ask(f"question number {i} about the weather")
        except ProviderError:
            failed += 1  # the policy gave up: what was served is still booked
    log = cfg.calls_frame()
    assert log.fault.isin(["malformed", "empty"]).any() and log.fault.eq("rate_limit").any()
    served = _served_tokens(cfg)
    assert ledger.accounts()[0]["spent_tokens"] == served == outer.tokens == inner.tokens
    assert ledger.in_flight() == 0 and ledger.accounts()[0]["reserved_tokens"] == 0
    assert policy_inside or ledger.overruns() == 0  # outside, every attempt was reserved before it was made
    assert math.isclose(outer.cost_usd, inner.cost_usd, rel_tol=1e-9)
    assert math.isclose(ledger.accounts()[0]["spent_usd"], outer.cost_usd, abs_tol=1e-8)
    assert outer.calls == 12 and inner.calls == len(log)  # one call outside, every attempt inside
    # inside the policy a cut or empty answer is a served call (the policy refuses it further out)
    assert (inner.errors, inner.malformed_calls) == (int(log.fault.eq("rate_limit").sum()), 0)
    assert outer.errors + outer.malformed_calls == failed


async def test_a_policy_that_gives_up_carries_the_served_total_on_its_error() -> None:
    cfg = OfflineModel(seed=0, faults=Faults(malformed=1.0))  # every answer cut at the token limit
    policy = RetryPolicy(max_attempts=3, sleep=no_wait, seed=0)
    meter = UsageMeter()
    agent = ag2.Agent("w", "Be brief.", config=cfg, middleware=[meter.middleware(), policy])
    with pytest.raises(ProviderError) as info:
        await agent.ask("hello there")
    assert cfg.calls == 3
    served = served_response(info.value)
    assert served is not None and served.usage.prompt_tokens + served.usage.completion_tokens == _served_tokens(cfg)
    assert (meter.calls, meter.errors, meter.malformed_calls, meter.tokens) == (1, 0, 1, _served_tokens(cfg))


async def test_no_double_booking_when_the_first_attempt_succeeds() -> None:
    cfg = OfflineModel(seed=0)
    outer = UsageMeter()
    ledger, budget = _budget(cfg, agent="w")
    policy = RetryPolicy(max_attempts=3, sleep=no_wait, seed=0)
    agent = ag2.Agent("w", "Be brief.", config=cfg, middleware=[outer.middleware(), budget, policy])
    await agent.ask("hello")
    assert outer.tokens == ledger.accounts()[0]["spent_tokens"] == _served_tokens(cfg) > 0


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_an_attempt_the_provider_never_answered_books_nothing() -> None:
    inner_model = OfflineModel(seed=0)
    slow = SlowModel(inner_model, delay_s=None, first=1)  # the first attempt is never answered
    outer = UsageMeter()
    ledger, budget = _budget(slow, agent="w")
    policy = RetryPolicy(max_attempts=2, attempt_timeout_s=5, sleep=no_wait, seed=0)
    agent = ag2.Agent("w", "Be brief.", config=slow, middleware=[outer.middleware(), budget, policy])
    await agent.ask("hello")
    assert slow.calls == 2 and inner_model.calls == 1 and policy.retries["AttemptTimeout"] == 1
    assert outer.tokens == ledger.accounts()[0]["spent_tokens"] == _served_tokens(inner_model) > 0
    assert (outer.calls, outer.errors, outer.malformed_calls) == (1, 0, 0)


# -- 5. what an attacker (or a broken client) can do to the accounting ----------------------------------


async def test_a_cancelled_call_books_what_the_retry_policy_was_served_and_releases_the_rest() -> None:
    import asyncio

    cfg = OfflineModel(seed=0, faults=Faults(malformed=1.0))  # attempt 1 is served, cut at the token limit
    meter = UsageMeter()
    ledger, budget = _budget(cfg, agent="w")
    waiting = asyncio.Event()

    async def backoff_forever(_s: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    policy = RetryPolicy(max_attempts=3, sleep=backoff_forever, seed=0)
    agent = ag2.Agent("w", "Be brief.", config=cfg, middleware=[meter.middleware(), budget, policy])
    task = asyncio.ensure_future(agent.ask("hello"))
    await waiting.wait()  # the policy waits before attempt 2: the caller gives up now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cfg.calls == 1 and ledger.in_flight() == 0
    assert ledger.accounts()[0]["spent_tokens"] == meter.tokens == _served_tokens(cfg) > 0
    assert (meter.calls, meter.errors, meter.malformed_calls) == (1, 1, 0)


class _Reports:
    """Middleware standing in for a client that reports impossible usage."""

    def __init__(self, usage) -> None:
        self.usage = usage

    def __call__(self, event, context):
        from ag2.middleware import BaseMiddleware

        usage = self.usage

        class _Hook(BaseMiddleware):
            async def on_llm_call(self, call_next, events, context):
                from ag2.events import ModelResponse

                r = await call_next(events, context)
                return ModelResponse(r.message, usage=usage, model=r.model, provider=r.provider)

        return _Hook(event, context)


async def test_impossible_usage_is_a_clear_error_and_the_meter_still_counts_the_call() -> None:
    from ag2.events import Usage

    from agentops.errors import ConfigError

    meter = UsageMeter()
    stack = [meter.middleware(), _Reports(Usage(prompt_tokens=-5))]
    agent = ag2.Agent("w", "Be brief.", config=OfflineModel(seed=0), middleware=stack)
    with pytest.raises(ConfigError, match=r"reported usage.*finite and ≥ 0.*fix the client's usage reporting"):
        await agent.ask("hello")
    assert (meter.calls, meter.errors, meter.malformed_calls, meter.tokens, meter.cost_usd) == (1, 1, 0, 0, 0.0)


def _makers():
    from agentops.resilience import Breakers, CircuitBreaker, FallbackModel, InputGuard

    cfg = OfflineModel(seed=0)
    return {
        "ToolCallGuard": lambda ls: ToolCallGuard(listeners=ls),
        "RetryPolicy": lambda ls: RetryPolicy(listeners=ls),
        "BudgetMiddleware": lambda ls: BudgetMiddleware(
            InProcessLedger(), agent="w", model=cfg, budgets=[Budget("b", max_tokens=10)], listeners=ls
        ),
        "FallbackModel": lambda ls: FallbackModel(cfg, listeners=ls),
        "Breakers": lambda ls: Breakers(listeners=ls),
        "CircuitBreaker": lambda ls: CircuitBreaker("c", listeners=ls),
        "InputGuard": lambda ls: InputGuard(listeners=ls),
    }


@pytest.mark.parametrize("owner", list(_makers()))
def test_a_listener_that_cannot_be_called_is_refused_when_it_is_given(owner: str) -> None:
    from agentops.errors import ConfigError

    make = _makers()[owner]
    telemetry = Telemetry(registry=CollectorRegistry())
    for bad, named in ((telemetry, "Telemetry"), ([telemetry], "Telemetry"), (["telemetry.listener"], "str")):
        with pytest.raises(
            ConfigError, match=rf"{owner}: listeners must be callables.*got {named}.*telemetry\.listener"
        ):
            make(bad)
    assert make([telemetry.listener]).listeners == (telemetry.listener,)
    assert make(()).listeners == ()


async def test_the_guard_answers_with_every_attempt_a_retry_policy_inside_it_was_served(allow_model_requests):
    from agentops.testing import chat_completion

    ran.clear()
    cut = chat_completion(None, tool_calls=[("get_weather", CUT)], finish_reason="length", usage=(20, 64))
    cfg = _fake(
        cut,
        cut,  # the policy asks twice, then gives up: the guard answers the model
        chat_completion(None, tool_calls=[("get_weather", '{"city": "Paris"}')], usage=(40, 10)),
        chat_completion("It is sunny in Paris.", usage=(60, 6)),
    )
    outer, inner = UsageMeter(), UsageMeter()
    ledger, budget = _budget(cfg)
    policy = RetryPolicy(max_attempts=2, sleep=no_wait, seed=0)
    guard = ToolCallGuard(max_tool_rounds=3)
    stack = [budget, outer.middleware(), guard, policy, inner.middleware()]
    reply = await ag2.Agent("ops", config=cfg, tools=[get_weather], middleware=stack).ask("Weather in Paris?")
    assert reply.body == "It is sunny in Paris." and ran == ["Paris"] and guard.malformed == 1
    assert ledger.accounts()[0]["spent_tokens"] == outer.tokens == inner.tokens == 84 + 84 + 50 + 66
    assert (outer.calls, outer.errors, outer.malformed_calls) == (3, 0, 0)  # the guard answered: served calls
    assert (inner.calls, inner.errors, inner.malformed_calls) == (4, 0, 2)
    assert budget.usage_frame().outcome.tolist() == ["ok", "ok", "ok"]


def _bad_inputs():
    from agentops.resilience import Breakers, Bulkhead, CircuitBreaker, FallbackModel

    cfg = OfflineModel(seed=0)
    return {
        "ledger clock": (lambda: InProcessLedger(clock=5), r"clock must be a callable returning seconds"),
        "policy sleep": (lambda: RetryPolicy(sleep=5), r"RetryPolicy: sleep must be an async callable"),
        "policy clock": (lambda: RetryPolicy(clock="now"), r"RetryPolicy: clock must be a callable"),
        "policy schema": (lambda: RetryPolicy(output_schema=5), r"output_schema must be a pydantic model class"),
        "budget list": (
            lambda: BudgetMiddleware(InProcessLedger(), agent="a", model=cfg, budgets=Budget("b", max_tokens=5)),
            r"budgets must be a list of Budget.*budgets=\[Budget",
        ),
        "bulkhead text": (lambda: Bulkhead("n", "x"), r"bulkhead 'n': limit must be a whole number ≥ 1"),
        "bulkhead float": (lambda: Bulkhead("n", 1.5), r"bulkhead 'n': limit must be a whole number ≥ 1"),
        "fallback bulkhead 0": (lambda: FallbackModel(cfg, bulkhead=0), r"limit must be a whole number ≥ 1.*None"),
        "fallback model": (lambda: FallbackModel("gpt-4o"), r"FallbackModel takes AG2 model configs.*got str"),
        "fallback retry": (lambda: FallbackModel(cfg, retry=3), r"retry must be a RetryPolicy or None, got int"),
        "fallback cache": (lambda: FallbackModel(cfg, cache=5), r"cache must be an AnswerCache.*got int"),
        "breakers settings": (
            lambda: Breakers({"failure_threshold": 3}),
            r"Breakers: settings must be a BreakerSettings.*BreakerSettings\(failure_threshold=",
        ),
        "breaker settings": (
            lambda: CircuitBreaker("c", {"x": 1}),
            r"CircuitBreaker: settings must be a BreakerSettings",
        ),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_resilience_and_budget_inputs_fail_where_they_are_given(case: str) -> None:
    from agentops.errors import ConfigError

    make, message = _bad_inputs()[case]
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.redis
async def test_on_redis_too_a_retry_policy_inside_a_budget_books_every_served_attempt_once(redis_client) -> None:
    from agentops.budgets import RedisLedger

    cfg = OfflineModel(seed=2, faults=Faults(malformed=0.3, empty=0.15, rate_limit=0.15))
    ledger = RedisLedger(redis_client, prefix="served")
    caps = [Budget("total", scope="global", max_tokens=100_000, max_usd=10.0)]
    budget = BudgetMiddleware(ledger, agent="w", model=cfg, max_completion_tokens=64, budgets=caps)
    outer = UsageMeter()
    policy = RetryPolicy(max_attempts=3, sleep=no_wait, seed=2)
    agent = ag2.Agent("w", "Be brief.", config=cfg, middleware=[outer.middleware(), budget, policy])
    for i in range(8):
        with contextlib.suppress(ProviderError):  # a policy that gave up: what was served is still booked
            await agent.ask(f"question number {i} about the weather")
    assert cfg.calls_frame().fault.isin(["malformed", "empty"]).any()
    (row,) = ledger.accounts()
    assert row["spent_tokens"] == outer.tokens == _served_tokens(cfg) and row["reserved_tokens"] == 0


# -- a fallback chain: what each model served is booked at its own price --------------------------------


async def test_a_fallback_chain_books_what_each_model_served_at_its_own_price() -> None:
    from agentops.resilience import FallbackModel

    register_price("fallback-second", input_per_1k=2.0, output_per_1k=4.0)
    first = OfflineModel(seed=0, faults=Faults(malformed=1.0))  # every answer cut: refused, but billed
    second = OfflineModel("fallback-second", seed=1)
    chain = FallbackModel(first, second, retry=RetryPolicy(max_attempts=2, sleep=no_wait, seed=0))
    telemetry, meter = Telemetry(registry=CollectorRegistry()), UsageMeter()
    ledger, budget = _budget(chain, agent="w")
    agent = ag2.Agent("w", "Be brief.", config=chain, middleware=[meter.middleware(), budget])
    telemetry.instrument(agent)
    await agent.ask("hello")
    assert first.calls == 2 and second.calls == 1
    cost_first, cost_second = cost_usd(first.usage, "offline-1"), cost_usd(second.usage, "fallback-second")
    assert meter.tokens == ledger.accounts()[0]["spent_tokens"] == _served_tokens(first) + _served_tokens(second)
    assert (meter.calls, meter.errors, meter.malformed_calls) == (1, 0, 0)
    assert math.isclose(meter.cost_usd, cost_first + cost_second, rel_tol=1e-9)
    assert math.isclose(ledger.accounts()[0]["spent_usd"], cost_first + cost_second, abs_tol=1e-9)
    r = telemetry.registry
    assert math.isclose(_sample(r, "agentops_cost_usd_total", model="offline-1"), cost_first, rel_tol=1e-9)
    assert math.isclose(_sample(r, "agentops_cost_usd_total", model="fallback-second"), cost_second, rel_tol=1e-9)


async def test_a_fallback_chain_that_ends_degraded_still_books_what_was_served() -> None:
    from agentops.resilience import FallbackExhausted, FallbackModel, is_degraded

    first = OfflineModel(seed=0, faults=Faults(malformed=1.0))
    second = OfflineModel(seed=1, faults=Faults(empty=1.0))
    meter = UsageMeter()
    canned = FallbackModel(first, second, retry=RetryPolicy(max_attempts=2, sleep=no_wait, seed=0))
    reply = await ag2.Agent("w", "Be brief.", config=canned, middleware=[meter.middleware()]).ask("hello")
    assert is_degraded(reply) and meter.tokens == _served_tokens(first) + _served_tokens(second) > 0
    exhausted = FallbackModel(first, second, degraded=None)
    meter = UsageMeter()
    before = _served_tokens(first) + _served_tokens(second)
    with pytest.raises(FallbackExhausted) as info:
        await ag2.Agent("w", "Be brief.", config=exhausted, middleware=[meter.middleware()]).ask("hello again")
    assert meter.tokens == _served_tokens(first) + _served_tokens(second) - before > 0
    assert (meter.calls, meter.errors) == (1, 1) and served_response(info.value) is not None
