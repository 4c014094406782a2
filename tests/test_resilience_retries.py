"""RetryPolicy: each wire fault over real HTTP, Retry-After, deadlines, held output, idempotent tools."""

from __future__ import annotations

import asyncio
import json

import ag2
import httpx2
import pytest
from ag2.events import ModelMessage, ModelMessageChunk, ModelResponse, ToolCallEvent, ToolErrorEvent, ToolResultEvent

from agentops.errors import (
    ConfigError,
    EmptyOutputError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
    TruncatedOutputError,
)
from agentops.listeners import RETRY
from agentops.models import OfflineModel
from agentops.resilience import AttemptTimeout, HTTPFaults, RetryPolicy, RetrySettings, as_provider_error

QUESTION = "What is the capital of France?"
ANSWER = "Offline answer to: What is the capital of France?"


class FakeTime:
    """A clock that moves only when the policy sleeps; ``on_sleep`` runs at each wait."""

    def __init__(self, on_sleep=None) -> None:
        self.now, self.waits, self.on_sleep = 0.0, [], on_sleep

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep()


def _context():
    from ag2 import MemoryStream
    from ag2.context import ConversationContext

    return ConversationContext(stream=MemoryStream())


def _agent(server, policy, **options):
    options = {"timeout": 5.0, "max_retries": 0, **options}
    return ag2.Agent("a", "Be brief.", config=server.config("offline-1", **options), middleware=[policy])


@pytest.mark.parametrize(
    ("kind", "retried_as"),
    [
        ("rate_limit", "RateLimitError"),
        ("server_error", "ServerError"),
        ("reset", "ProviderError"),
        ("truncated", "TruncatedOutputError"),
        ("malformed", "MalformedOutputError"),
    ],
)
async def test_each_wire_fault_is_retried_then_answered(fault_servers, kind, retried_as) -> None:
    server = fault_servers(OfflineModel(sleep=False), faults=HTTPFaults(**{kind: 1.0}, retry_after_s=0.25))
    events = []
    t = FakeTime(on_sleep=lambda: server.set_faults(HTTPFaults()))  # the fault clears while the policy waits
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock, seed=1, listeners=[lambda k, p: events.append((k, p))])
    reply = await _agent(server, policy).ask(QUESTION)
    assert reply.body == ANSWER and reply.response.finish_reason == "stop"
    assert policy.retries == {retried_as: 1} and policy.attempts == 2 and server.stats.requests == 2
    assert events == [
        (RETRY, {"model": "offline-1", "attempt": 1, "error": retried_as, "wait_s": events[0][1]["wait_s"]})
    ]
    if kind == "rate_limit":
        assert t.waits == [0.25]  # the server's Retry-After, not a backoff draw


async def test_slow_first_byte_times_out_and_is_retried(fault_servers) -> None:
    server = fault_servers(OfflineModel(sleep=False), faults=HTTPFaults(slow=1.0, slow_s=2.0))
    t = FakeTime(on_sleep=lambda: server.set_faults(HTTPFaults()))
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock)
    reply = await _agent(server, policy, timeout=0.2).ask(QUESTION)
    assert reply.body == ANSWER and policy.retries == {"ProviderTimeout": 1}


async def test_empty_streamed_answer_is_retried(fault_servers) -> None:
    # a malformed body on a streamed call reaches AG2 as an answer with no text: empty output
    server = fault_servers(OfflineModel(sleep=False), faults=HTTPFaults(malformed=1.0))
    t = FakeTime(on_sleep=lambda: server.set_faults(HTTPFaults()))
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock)
    reply = await _agent(server, policy, streaming=True).ask(QUESTION)
    assert reply.body == ANSWER and policy.retries == {"EmptyOutputError": 1}


async def test_cut_stream_is_held_back_and_retried_so_subscribers_see_one_answer(fault_servers) -> None:
    server = fault_servers(OfflineModel(sleep=False), faults=HTTPFaults(truncated=1.0))
    t = FakeTime(on_sleep=lambda: server.set_faults(HTTPFaults()))
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock, require_finish_reason=True)
    agent = _agent(server, policy, streaming=True)
    seen: list[str] = []
    async with agent.run(QUESTION) as run:
        run.stream.subscribe(
            lambda e: seen.append(e.content) if isinstance(e, (ModelMessage, ModelMessageChunk)) else None
        )
        reply = await run.result()
    assert reply.body == ANSWER and policy.retries == {"TruncatedOutputError": 1}
    assert "".join(seen[:-1]) == ANSWER and seen[-1] == ANSWER  # only the good attempt's chunks, then its message


async def test_live_stream_that_published_is_not_retried(fault_servers) -> None:
    server = fault_servers(OfflineModel(sleep=False), faults=HTTPFaults(truncated=1.0))
    t = FakeTime(on_sleep=lambda: server.set_faults(HTTPFaults()))
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock, require_finish_reason=True, buffer_output=False)
    with pytest.raises(TruncatedOutputError, match="without a finish reason"):
        await _agent(server, policy, streaming=True).ask(QUESTION)
    assert server.stats.requests == 1  # AG2 refused to repeat an attempt whose chunks were published


async def test_attempts_are_bounded_then_the_error_is_ours(fault_servers) -> None:
    server = fault_servers(OfflineModel(sleep=False), faults=HTTPFaults(server_error=1.0))
    t = FakeTime()
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock, max_attempts=3, base_s=1.0, max_backoff_s=1.5, seed=3)
    with pytest.raises(ServerError) as info:
        await _agent(server, policy).ask(QUESTION)
    assert info.value.status_code in (500, 502, 503) and type(info.value.__cause__).__name__ == "InternalServerError"
    assert server.stats.requests == 3 and policy.gave_up == 1 and len(t.waits) == 2
    assert 0 <= t.waits[0] < 1.0 and 0 <= t.waits[1] < 1.5  # full jitter below each window


async def test_retry_after_above_the_cap_fails_at_once(fault_servers) -> None:
    server = fault_servers(OfflineModel(sleep=False), faults=HTTPFaults(rate_limit=1.0, retry_after_s=30))
    t = FakeTime()
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock, retry_after_cap_s=10)
    with pytest.raises(RateLimitError) as info:
        await _agent(server, policy).ask(QUESTION)
    assert info.value.retry_after == 30 and t.waits == [] and server.stats.requests == 1


async def test_deadline_stops_a_slow_attempt(fault_servers) -> None:
    server = fault_servers(OfflineModel(sleep=False), faults=HTTPFaults(slow=1.0, slow_s=3.0))
    policy = RetryPolicy(deadline_s=0.3)
    with pytest.raises(ProviderTimeout, match=r"deadline of 0\.3 s passed during attempt 1"):
        await _agent(server, policy, timeout=10.0).ask(QUESTION)


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_an_attempt_past_its_own_limit_is_retried_within_the_deadline() -> None:
    calls = 0

    async def slow_first(events, context):
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(100)
        return ModelResponse(ModelMessage("ok"), finish_reason="stop")

    def loop_clock():
        return asyncio.get_running_loop().time()

    policy = RetryPolicy(attempt_timeout_s=2, deadline_s=10, base_s=0, clock=loop_clock)
    response = await policy.run(slow_first, [], _context())
    assert response.message.content == "ok" and calls == 2 and dict(policy.retries) == {"AttemptTimeout": 1}
    stuck = RetryPolicy(attempt_timeout_s=2, deadline_s=3, base_s=0, max_attempts=5, clock=loop_clock)

    async def never(events, context):
        await asyncio.sleep(100)

    with pytest.raises(ProviderTimeout, match=r"deadline of 3 s passed during attempt 2"):
        await stuck.run(never, [], _context())  # attempt 2 has 1 s left: the deadline, not the attempt limit
    with pytest.raises(AttemptTimeout, match=r"attempt 1 exceeded 2 s"):
        await RetryPolicy(attempt_timeout_s=2, max_attempts=1).run(never, [], _context())
    assert issubclass(AttemptTimeout, ProviderTimeout)


async def test_deadline_counts_waits() -> None:
    t = FakeTime()
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock, deadline_s=5, base_s=4, max_backoff_s=4, max_attempts=10, seed=0)
    calls = 0

    async def failing(events, context):
        nonlocal calls
        calls += 1
        raise ServerError("503")

    with pytest.raises(ServerError):
        await policy.run(failing, [], _context())
    assert calls >= 2 and sum(t.waits) <= 5 and policy.gave_up == 1  # the next wait would pass the deadline


@pytest.mark.parametrize("exc", [ConfigError("bad"), ProviderError("401", status_code=401), ValueError("bug")])
async def test_non_retryable_errors_are_not_retried(exc) -> None:
    t, calls = FakeTime(), 0

    async def failing(events, context):
        nonlocal calls
        calls += 1
        raise exc

    with pytest.raises(type(exc)):
        await RetryPolicy(sleep=t.sleep, clock=t.clock).run(failing, [], _context())
    assert calls == 1 and t.waits == []


async def test_output_checks_and_structured_repair() -> None:
    from pydantic import BaseModel

    class Route(BaseModel):
        route: str

    answers = iter(["", 'Sure! ```json\n{"route": "billing"}\n```'])

    async def model(events, context):
        return ModelResponse(ModelMessage(next(answers)), finish_reason="stop", model="m")

    t = FakeTime()
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock, output_schema=Route)
    response = await policy.run(model, [], _context())
    assert response.message.content == '{"route":"billing"}' and response.metadata["agentops.repaired"]
    assert policy.retries == {"EmptyOutputError": 1} and policy.repaired == 1


def test_settings_are_validated_and_described() -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        RetrySettings(max_attempts=0)
    policy = RetryPolicy(RetrySettings(max_attempts=2), deadline_s=9)
    assert policy.settings.max_attempts == 2 and policy.settings.deadline_s == 9
    assert policy.describe().config["deadline_s"] == 9


def test_foreign_errors_become_ours() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    import openai

    limited = openai.RateLimitError(
        "slow down", response=httpx2.Response(429, headers={"retry-after": "2"}, request=request), body=None
    )
    converted = as_provider_error(limited)
    assert isinstance(converted, RateLimitError) and converted.retry_after == 2 and converted.__cause__ is limited
    bad = openai.BadRequestError("no", response=httpx2.Response(400, request=request), body=None)
    assert type(as_provider_error(bad)) is ProviderError and not as_provider_error(bad).retryable
    assert isinstance(as_provider_error(openai.APITimeoutError(request=request)), ProviderTimeout)
    assert as_provider_error(openai.APIConnectionError(request=request)).retryable
    assert isinstance(as_provider_error(json.JSONDecodeError("x", "{", 0)), ProviderError)
    bug = KeyError("x")
    assert as_provider_error(bug) is bug and isinstance(as_provider_error(EmptyOutputError("e")), EmptyOutputError)


# -- tools -----------------------------------------------------------------------------------------


def _call(name: str = "lookup") -> ToolCallEvent:
    return ToolCallEvent(name, id="call_1", arguments='{"order_id": 7}')


async def test_idempotent_tool_is_retried_on_retryable_errors_only() -> None:
    t = FakeTime()
    hook = RetryPolicy(sleep=t.sleep, clock=t.clock).for_tool()
    runs = []

    async def flaky(event, context):
        runs.append(1)
        if len(runs) < 3:
            return ToolErrorEvent.from_call(event, ConnectionResetError("reset"))
        return ToolResultEvent.from_call(event, result="found")

    result = await hook(flaky, _call(), None)
    assert isinstance(result, ToolResultEvent) and not isinstance(result, ToolErrorEvent) and len(runs) == 3

    async def broken(event, context):
        runs.append(1)
        return ToolErrorEvent.from_call(event, ValueError("bad argument"))

    runs.clear()
    result = await hook(broken, _call(), None)
    assert isinstance(result, ToolErrorEvent) and len(runs) == 1  # a bug is not retried


async def test_tools_through_an_agent_idempotent_retried_others_run_once() -> None:
    from agentops.models import tool_rule

    model = OfflineModel(sleep=False)
    model.add_rule(tool_rule("lookup", keywords=["order"], arguments={"order_id": 7}))
    model.add_rule(tool_rule("refund", keywords=["refund"], arguments={"order_id": 7}))
    t = FakeTime()
    policy = RetryPolicy(sleep=t.sleep, clock=t.clock)
    runs = {"lookup": 0, "refund": 0}

    @ag2.tool(middleware=[policy.for_tool()])
    def lookup(order_id: int) -> str:
        runs["lookup"] += 1
        if runs["lookup"] == 1:
            raise TimeoutError("backend slow")
        return f"order {order_id}: shipped"

    @ag2.tool
    def refund(order_id: int) -> str:
        runs["refund"] += 1
        raise TimeoutError("payment gateway slow")

    agent = ag2.Agent("a", "Be brief.", config=model, tools=[lookup, refund], middleware=[policy])
    assert "order 7: shipped" in (await agent.ask("where is my order?")).body
    reply = await agent.ask("please refund")
    assert runs == {"lookup": 2, "refund": 1} and "refund returned" in reply.body


def test_the_workflow_runner_loads_the_retry_policy_without_the_server() -> None:
    import subprocess
    import sys

    code = (
        "import sys, agentops.workflows, agentops.resilience as r; "
        "assert 'agentops.resilience.server' not in sys.modules and 'uvicorn' not in sys.modules; "
        "assert r.FaultServer.__name__ == 'FaultServer' and 'agentops.resilience.server' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


async def test_allow_truncated_keeps_an_answer_cut_at_the_token_limit() -> None:
    calls = 0

    async def cut(events, context):
        nonlocal calls
        calls += 1
        return ModelResponse(ModelMessage("cut he"), finish_reason="length")

    response = await RetryPolicy(allow_truncated=True).run(cut, [], _context())
    assert response.message.content == "cut he" and calls == 1
    with pytest.raises(TruncatedOutputError):
        await RetryPolicy(max_attempts=2, base_s=0).run(cut, [], _context())
    assert calls == 3
