"""Contract tests: one per AG2 detail that ``agentops._ag2`` relies on beyond AG2's documented API.

When an AG2 upgrade breaks one of these, fix the matching helper in ``agentops/_ag2.py``; nothing else
in the package should need to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os

import ag2
import pytest
from ag2.events import ToolApprovalRequest, ToolErrorEvent
from ag2.knowledge import MemoryKnowledgeStore
from ag2.middleware import BaseMiddleware, Middleware
from ag2.middleware.builtin import MetricsMiddleware, TelemetryMiddleware
from ag2.middleware.builtin.tools import approval_required
from ag2.network import EV_PACKET, Hub, TransitionGraph
from ag2.testing import TestConfig
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

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


# ==================================================================================================
# Telemetry
# ==================================================================================================


def test_span_type_vocabulary_is_ag2s():
    from ag2 import _telemetry_consts as consts

    assert _ag2.SPAN_TYPE_ATTR == consts.ATTR_SPAN_TYPE
    assert (_ag2.SPAN_TYPE_AGENT, _ag2.SPAN_TYPE_LLM, _ag2.SPAN_TYPE_TOOL, _ag2.SPAN_TYPE_USAGE) == (
        consts.SPAN_TYPE_AGENT,
        consts.SPAN_TYPE_LLM,
        consts.SPAN_TYPE_TOOL,
        consts.SPAN_TYPE_USAGE,
    )


async def test_turn_model_config_is_the_config_the_turn_runs_with():
    seen = []

    class Probe(BaseMiddleware):
        async def on_llm_call(self, call_next, events, context):
            seen.append(_ag2.turn_model_config(context))
            return await call_next(events, context)

    default, override = OfflineModel("offline-1", seed=0), OfflineModel("offline-mini", seed=0)
    agent = ag2.Agent("a", "Be brief.", config=default, middleware=[Probe])
    await agent.ask("hi")
    await agent.ask("hi", config=override)
    assert seen == [default, override]
    assert _ag2.turn_model_config(object()) is None


def _weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


async def test_hook_span_is_the_span_ag2_opened_for_the_hook():
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[tuple[str, str | None]] = []

    class Probe(BaseMiddleware):
        def _see(self, hook: str, span_type: str) -> None:
            span = _ag2.hook_span(span_type)
            seen.append((hook, span.name if span is not None else None))

        async def on_turn(self, call_next, event, context):
            self._see("turn", _ag2.SPAN_TYPE_AGENT)
            self._see("turn as llm", _ag2.SPAN_TYPE_LLM)  # another hook's type: never that span
            return await call_next(event, context)

        async def on_llm_call(self, call_next, events, context):
            self._see("llm", _ag2.SPAN_TYPE_LLM)
            return await call_next(events, context)

        async def on_tool_execution(self, call_next, event, context):
            self._see("tool", _ag2.SPAN_TYPE_TOOL)
            return await call_next(event, context)

    cfg = OfflineModel("offline-1", seed=0)
    cfg.add_rule(tool_rule("_weather", keywords=["weather"], arguments={"city": "Paris"}))
    traced = TelemetryMiddleware(
        tracer_provider=provider, capture_content=False, agent_name="a", model_name="offline-1"
    )
    agent = ag2.Agent("a", "Be brief.", config=cfg, tools=[_weather], middleware=[traced, Probe])
    await agent.ask("What's the weather?")
    assert seen == [
        ("turn", "invoke_agent a"),
        ("turn as llm", None),
        ("llm", "chat offline-1"),
        ("tool", "execute_tool _weather"),
        ("llm", "chat offline-1"),
    ]
    seen.clear()
    await ag2.Agent("b", "Be brief.", config=OfflineModel(seed=0), middleware=[Probe]).ask("hi")
    assert seen == [("turn", None), ("turn as llm", None), ("llm", None)]  # no AG2 span: nothing


# ==================================================================================================
# SLOs
# ==================================================================================================


@pytest.mark.parametrize("histogram", ["ag2_agent_turn_duration_seconds"])
async def test_turn_duration_buckets_are_the_bounds_ag2_exports(histogram):
    registry = CollectorRegistry()
    agent = ag2.Agent("a", "Be brief.", config=OfflineModel(seed=0), middleware=[MetricsMiddleware(registry)])
    await agent.ask("hi")
    from prometheus_client import generate_latest

    exported = [
        s.labels["le"]
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.name == f"{histogram}_bucket"
    ]
    assert [float(b) for b in exported] == [*_ag2.turn_duration_buckets(), float("inf")]


# ==================================================================================================
# Per-turn cost (agentops.models): stream subscriptions reuse their call model
# ==================================================================================================


def test_stream_subscribe_builds_its_call_model_through_the_module_global():
    import inspect

    import ag2.stream

    assert "build_model(" in inspect.getsource(ag2.stream.MemoryStream.subscribe)
    assert hasattr(ag2.stream, "build_model")


def test_a_call_model_is_described_by_its_slots():
    from ag2.utils import build_model
    from fast_depends.core.model import CallModel

    async def handler(event: object, context: ag2.Context) -> None: ...

    model = build_model(handler, serialize_result=False)
    assert type(model) is CallModel and not hasattr(model, "__dict__")
    copy = _ag2._with_call(model, handler)
    assert all(getattr(copy, s) is getattr(model, s) for s in CallModel.__slots__ if hasattr(model, s))


async def test_reused_call_models_deliver_events_and_the_context_like_fresh_ones():
    from ag2.events import ModelMessage
    from ag2.stream import MemoryStream

    cache = _ag2._CallModelCache(__import__("ag2.utils", fromlist=["build_model"]).build_model)
    seen: list[tuple[str, str, object]] = []

    def subscriber(tag: str):
        async def on_event(event: ModelMessage, context: ag2.Context) -> None:
            seen.append((tag, event.content, context))

        return on_event

    def sync_subscriber(tag: str):
        def on_event(event: ModelMessage, ctx: ag2.Context) -> None:  # a sync one runs in a thread
            seen.append((tag, event.content, ctx))

        return on_event

    stream = MemoryStream()
    context = ag2.context.ConversationContext(stream=stream)
    for tag in ("first", "second"):
        for make, suffix in ((subscriber, ""), (sync_subscriber, "-sync")):
            model = cache(make(tag + suffix), sync_to_thread=True, serialize_result=False)
            await model.asolve(
                ModelMessage(tag), stack=contextlib.AsyncExitStack(), cache_dependencies={}, **{"__ctx__": context}
            )
    assert [(t, c) for t, c, _ in seen] == [
        ("first", "first"),
        ("first-sync", "first"),
        ("second", "second"),
        ("second-sync", "second"),
    ]
    assert all(ctx is context for _, _, ctx in seen)
    assert (cache.hits, cache.misses) == (2, 2)


def test_a_function_with_other_defaults_or_annotations_gets_its_own_model():
    from ag2.utils import build_model

    cache = _ag2._CallModelCache(build_model)

    def make(default: object):
        async def handler(event: object, flag: object = default) -> None: ...

        return handler

    marker = object()
    cache(make(marker), serialize_result=False)
    cache(make(marker), serialize_result=False)
    cache(make(object()), serialize_result=False)
    assert (cache.hits, cache.misses) == (1, 2)
    cache(lambda event: None)  # a lambda is a function too: cached by its code
    assert (cache.hits, cache.misses) == (1, 3)
    built = cache(_partial_handler(), serialize_result=False)  # not a plain function: built, never cached
    assert (cache.hits, cache.misses) == (1, 3) and built is not None


def _partial_handler():
    import functools

    async def handler(event: object, extra: int) -> None: ...

    return functools.partial(handler, extra=1)


async def test_installing_the_cache_is_idempotent_and_turns_stay_the_same():
    import ag2.stream

    cache = _ag2.reuse_subscription_models()
    assert _ag2.reuse_subscription_models() is cache and ag2.stream.build_model is cache
    model = OfflineModel(seed=3)
    agent = ag2.Agent("a", "Be brief.", config=model)
    before = cache.hits
    replies = [(await agent.ask("hello there")).body for _ in range(2)]
    assert replies[0] == replies[1] and replies[0]
    assert cache.hits > before
