"""Fan-out with a concurrency limit and the shared HTTP client."""

from __future__ import annotations

import asyncio

import pytest

from agentops.errors import ConfigError
from agentops.fanout import fan_out, shared_http_client


class _Agent:
    def __init__(self) -> None:
        self.active = 0
        self.peak = 0

    async def ask(self, task: str) -> str:
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0)  # yield so other tasks start: event ordering, not wall time
        await asyncio.sleep(0)
        self.active -= 1
        return task.upper()


async def test_fan_out_keeps_order_and_respects_the_limit():
    agent = _Agent()
    out = await fan_out(agent, [f"t{i}" for i in range(10)], concurrency=3)
    assert out == [f"T{i}" for i in range(10)]
    assert agent.peak == 3


async def test_fan_out_with_a_real_agent():
    import ag2

    from agentops.models import OfflineModel

    model = OfflineModel()
    replies = await fan_out(ag2.Agent("w", "Be brief.", config=model), ["a b", "c d"], concurrency=2)
    assert [r.body for r in replies] == ["Offline answer to: a b", "Offline answer to: c d"]
    assert model.calls == 2


async def test_fan_out_rejects_bad_limit():
    with pytest.raises(ConfigError, match="concurrency"):
        await fan_out(_Agent(), ["x"], concurrency=0)


async def test_shared_http_client_is_one_per_endpoint():
    a = shared_http_client("http://127.0.0.1:9/v1")
    assert shared_http_client("http://127.0.0.1:9/v1/") is a
    assert shared_http_client("http://127.0.0.1:10/v1") is not a
    await a.aclose()
    assert shared_http_client("http://127.0.0.1:9/v1") is not a  # a closed client is replaced
