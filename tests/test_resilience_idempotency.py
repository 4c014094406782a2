"""IdempotencyLedger: a tool with a side effect runs at most once per idempotency key."""

from __future__ import annotations

import asyncio

import ag2
import pytest
from ag2.events import ToolCallEvent, ToolErrorEvent, ToolResultEvent

from agentops.errors import ConfigError
from agentops.models import OfflineModel, tool_rule
from agentops.resilience import IdempotencyLedger, ToolNotRerun


class Ctx:
    def __init__(self, key: str | None = None) -> None:
        self.variables = {"idempotency_key": key} if key else {}


def _call(args: str = '{"order_id": 7}', call_id: str = "call_1") -> ToolCallEvent:
    return ToolCallEvent("open_ticket", id=call_id, arguments=args)


def _text(result) -> str:
    return result.result.parts[0].content


async def test_a_repeat_gets_the_recorded_result_without_running_again() -> None:
    ledger, runs = IdempotencyLedger(), []
    hook = ledger.once()

    async def open_ticket(event, context):
        runs.append(event.id)
        return ToolResultEvent.from_call(event, result="ticket TCK-7 opened")

    first = await hook(open_ticket, _call(call_id="call_a"), Ctx("req-1"))
    again = await hook(open_ticket, _call('{ "order_id" : 7 }', call_id="call_b"), Ctx("req-1"))  # same args
    assert runs == ["call_a"] and _text(first) == _text(again) == "ticket TCK-7 opened"
    assert again.parent_id == "call_b" and not isinstance(again, ToolErrorEvent)
    await hook(open_ticket, _call('{"order_id": 8}'), Ctx("req-1"))  # other arguments: another action
    await hook(open_ticket, _call(), Ctx("req-2"))  # another request
    assert len(runs) == 3 and ledger.executed == 3 and ledger.replayed == 1


async def test_without_a_request_key_the_call_id_is_the_key() -> None:
    ledger = IdempotencyLedger()
    assert ledger.key_for(_call(call_id="call_9"), Ctx()).startswith("agentops:idem:call:call_9:open_ticket:")
    assert ledger.key_for(_call(), Ctx("r")).startswith("agentops:idem:req:r:open_ticket:")


async def test_a_failed_run_is_never_repeated() -> None:
    ledger, runs = IdempotencyLedger(), []
    hook = ledger.once()

    async def flaky(event, context):
        runs.append(1)
        return ToolErrorEvent.from_call(event, TimeoutError("gateway timed out"))

    await hook(flaky, _call(), Ctx("req-1"))
    again = await hook(flaky, _call(), Ctx("req-1"))
    assert runs == [1] and isinstance(again, ToolErrorEvent) and isinstance(again.error, ToolNotRerun)
    assert "already ran for this request and failed (TimeoutError: gateway timed out)" in str(again.error)


async def test_concurrent_duplicates_wait_for_the_first() -> None:
    ledger, runs = IdempotencyLedger(poll_s=0.001), []
    hook, gate = ledger.once(), asyncio.Event()

    async def slow(event, context):
        runs.append(1)
        await gate.wait()
        return ToolResultEvent.from_call(event, result="done")

    first = asyncio.create_task(hook(slow, _call(), Ctx("req-1")))
    second = asyncio.create_task(hook(slow, _call(), Ctx("req-1")))
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(first, second)
    assert runs == [1] and [_text(r) for r in results] == ["done", "done"]


async def test_a_duplicate_that_waits_too_long_is_refused() -> None:
    ledger = IdempotencyLedger(wait_s=0.0)
    hook, gate = ledger.once(), asyncio.Event()

    async def stuck(event, context):
        await gate.wait()
        return ToolResultEvent.from_call(event, result="done")

    first = asyncio.create_task(hook(stuck, _call(), Ctx("req-1")))
    await asyncio.sleep(0)
    refused = await hook(stuck, _call(), Ctx("req-1"))
    assert isinstance(refused.error, ToolNotRerun) and "already running" in str(refused.error)
    gate.set()
    await first


def test_bad_settings() -> None:
    with pytest.raises(ConfigError):
        IdempotencyLedger(ttl_s=0)


async def test_caller_retries_of_a_whole_request_do_not_repeat_the_side_effect() -> None:
    model = OfflineModel(sleep=False)
    model.add_rule(tool_rule("open_ticket", keywords=["ticket"], arguments={"order_id": 7}))
    ledger, opened = IdempotencyLedger(), []

    @ag2.tool(middleware=[ledger.once()])
    def open_ticket(order_id: int) -> str:
        opened.append(order_id)
        return f"ticket TCK-{order_id} opened"

    agent = ag2.Agent("support", "Be brief.", config=model, tools=[open_ticket])
    for _ in range(3):  # the caller retries the same request three times
        reply = await agent.ask("open a ticket please", variables={"idempotency_key": "req-7"})
        assert "ticket TCK-7 opened" in reply.body
    await agent.ask("open a ticket please", variables={"idempotency_key": "req-8"})
    assert opened == [7, 7]  # once per request key


@pytest.mark.redis
async def test_redis_records_are_shared_between_workers(redis_client, redis_url) -> None:
    workers = [IdempotencyLedger(redis_url, prefix="test:idem:") for _ in range(2)]
    runs = []

    async def open_ticket(event, context):
        runs.append(1)
        return ToolResultEvent.from_call(event, result="ticket TCK-7 opened")

    try:
        results = await asyncio.gather(*(w.once()(open_ticket, _call(), Ctx("req-1")) for w in workers))
        assert runs == [1] and {_text(r) for r in results} == {"ticket TCK-7 opened"}
        keys = redis_client.keys("test:idem:req:req-1:open_ticket:*")
        assert len(keys) == 1 and 0 < redis_client.ttl(keys[0]) <= 86_400
    finally:
        for w in workers:
            await w.close()
