"""Contract tests: one per AG2 detail that ``agentops._ag2`` relies on beyond AG2's documented API.

When an AG2 upgrade breaks one of these, fix the matching helper in ``agentops/_ag2.py``; nothing else
in the package should need to change.
"""

from __future__ import annotations

import asyncio
import importlib

import ag2
from ag2.knowledge import MemoryKnowledgeStore
from ag2.network import EV_PACKET, Hub, TransitionGraph
from ag2.testing import TestConfig

from agentops import _ag2

# ==================================================================================================
# Role graphs (agentops.graph)
# ==================================================================================================


def test_network_hub_logs_under_the_network_logger():
    core = importlib.import_module("ag2.network.hub.core")
    assert core.logger.name.startswith(_ag2.NETWORK_LOGGER + ".")


async def test_workflow_packet_body_is_the_speakers_text():
    hub = await Hub.open(MemoryKnowledgeStore(), expectation_sweep_interval=0, ttl_sweep_interval=0)
    try:
        user = await hub.register(ag2.Agent("user"), attach_plugin=False)
        echo = await hub.register(ag2.Agent("echo", config=TestConfig("hello back")), attach_plugin=False)
        graph = TransitionGraph.sequence([user.agent_id, echo.agent_id])
        channel = await user.open(type="workflow", target=["echo"], knobs={"graph": graph.to_dict()})
        await channel.send("hello")
        for _ in range(400):
            if (await channel.info()).is_terminal():
                break
            await asyncio.sleep(0.005)
        packets = [e for e in await hub.read_wal(channel.channel_id) if e.event_type == EV_PACKET]
    finally:
        await hub.close()
    assert [_ag2.packet_body(p) for p in packets if p.sender_id == echo.agent_id] == ["hello back"]


# ==================================================================================================
# Guardrails (agentops.guardrails)
# ==================================================================================================


async def test_client_publishes_through_the_context_stream_an_on_llm_call_hook_passes_down():
    from ag2.events import ModelMessageChunk
    from ag2.middleware import BaseMiddleware

    intercepted: list[str] = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        async def send(self, event, context):
            if isinstance(event, ModelMessageChunk):
                intercepted.append(event.content)
                return
            await self.inner.send(event, context)

    class Hook(BaseMiddleware):
        async def on_llm_call(self, call_next, events, context):
            return await call_next(events, _ag2.with_stream(context, Spy(_ag2.context_stream(context))))

    seen: list[str] = []
    agent = ag2.Agent("a", config=TestConfig(ModelMessageChunk("tok"), "done"), middleware=[Hook])
    async with agent.run("hi") as run:
        run.stream.subscribe(lambda e: seen.append(e.content) if isinstance(e, ModelMessageChunk) else None)
        reply = await run.result()
    assert intercepted == ["tok"] and seen == [] and reply.body == "done"


def test_tool_call_serialized_arguments_has_a_public_setter():
    from ag2.events import ToolCallEvent

    call = ToolCallEvent("t", id="c", arguments='{"a": 1}')
    call.serialized_arguments = {"a": 2}
    assert call.serialized_arguments == {"a": 2} and call.to_api()["function"]["arguments"] == '{"a": 2}'
