"""Contract tests: one per AG2 detail that ``agentops._ag2`` relies on beyond AG2's documented API.

When an AG2 upgrade breaks one of these, fix the matching helper in ``agentops/_ag2.py``; nothing else
in the package should need to change.
"""

from __future__ import annotations

import asyncio
import importlib
import os

import ag2
from ag2.events import ToolApprovalRequest, ToolErrorEvent
from ag2.knowledge import MemoryKnowledgeStore
from ag2.middleware import BaseMiddleware, Middleware
from ag2.middleware.builtin.tools import approval_required
from ag2.network import EV_PACKET, Hub, TransitionGraph
from ag2.testing import TestConfig

from agentops import _ag2
from agentops._ag2 import approval_call, call_arguments
from agentops.models import OfflineModel, tool_rule

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
# Evals (agentops.evals)
# ==================================================================================================


async def test_evaluate_traces_with_an_empty_store_dir_grades_in_memory_and_writes_nothing(tmp_path, monkeypatch):
    from ag2.eval import InMemoryTraceSource, RunResult, Suite, Task, Trace, TraceRef, load_run, scorer
    from ag2.events import ModelMessage, ModelResponse

    monkeypatch.chdir(tmp_path)

    @scorer
    def answered(outputs) -> bool:
        return bool(outputs)

    trace = Trace(events=(ModelResponse(ModelMessage("hi")),), exception=None, duration_ms=1)
    source = InMemoryTraceSource([(TraceRef(trace_id="t-a", task_id="a"), trace)])
    result = await _ag2.grade_traces_in_memory(
        source, scorers=[answered], suite=Suite([Task(inputs={"input": "x"}, task_id="a")]), run_id="r1"
    )
    assert isinstance(result, RunResult) and result.pass_rate("answered") == 1.0
    assert os.listdir(tmp_path) == []  # nothing written, not even under the working directory
    saved = result.save(tmp_path / "run.json")  # an explicit path still saves
    assert load_run(saved).pass_rate("answered") == 1.0


# ==================================================================================================
# Tool approvals (agentops.tools.Approver)
# ==================================================================================================


def wire_money(amount: int, to: str) -> str:
    """Send money."""
    return f"sent {amount} to {to}"


async def test_an_approval_request_names_a_call_that_is_already_in_the_history() -> None:
    """ToolApprovalRequest.tool_call_id is the ToolCallEvent.id, and that call is in the stream's
    history when the hitl hook runs; a hook object's ``context`` parameter is injected by type."""
    found: list[tuple[str, dict, str]] = []

    class Hook:
        async def __call__(self, event, context):
            call = await approval_call(event, context)
            found.append((call.name, call_arguments(call), type(event).__name__))
            return "y"

    Hook.__call__.__annotations__ = {"event": ToolApprovalRequest, "context": ag2.Context, "return": str}
    cfg = OfflineModel(seed=0)
    cfg.add_rule(tool_rule("wire_money", keywords=["pay"], arguments={"amount": 5, "to": "bob"}))
    tool = ag2.tool(wire_money, middleware=[approval_required()])
    reply = await ag2.Agent("a", "Help.", config=cfg, tools=[tool], hitl_hook=Hook()).ask("pay bob")
    assert found == [("wire_money", {"amount": 5, "to": "bob"}, "ToolApprovalRequest")]
    assert reply.body == "wire_money returned: sent 5 to bob."


def test_call_arguments_tolerates_what_a_model_may_send() -> None:
    from ag2.events import ToolCallEvent

    assert call_arguments(ToolCallEvent("t", id="1", arguments='{"a": 1}')) == {"a": 1}
    assert call_arguments(ToolCallEvent("t", id="2", arguments="[1, 2]")) == {}
    assert call_arguments(ToolCallEvent("t", id="3", arguments='{"a": ')) == {}


# ==================================================================================================
# Tool errors (agentops.tools authorizer)
# ==================================================================================================


class _Seen(BaseMiddleware):
    def __init__(self, event, context, seen: list) -> None:
        super().__init__(event, context)
        self.seen = seen

    async def on_tool_execution(self, call_next, event, context):
        result = await call_next(event, context)
        self.seen.append(result)
        return result


async def test_a_raising_tool_reaches_agent_middleware_as_a_tool_error_event_carrying_the_exception() -> None:
    def explode() -> str:
        """Explode."""
        raise PermissionError("sealed")

    seen: list = []
    cfg = OfflineModel(seed=1)
    cfg.add_rule(tool_rule("explode", keywords=["boom"], arguments={}))
    await ag2.Agent("a", "Help.", config=cfg, tools=[explode], middleware=[Middleware(_Seen, seen=seen)]).ask("boom")
    (result,) = seen
    assert isinstance(result, ToolErrorEvent) and isinstance(result.error, PermissionError)
    assert str(result.error) == "sealed"


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
