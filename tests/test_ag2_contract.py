"""Contract tests: every AG2 behaviour ``agentops._ag2`` relies on, checked against the pinned AG2.

An AG2 upgrade that changes one of them fails here, with the test naming the coupling.
"""

from __future__ import annotations

import ag2
import pytest
from ag2.middleware import BaseMiddleware
from ag2.middleware.builtin import MetricsMiddleware, TelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from agentops import _ag2
from agentops.models import OfflineModel, tool_rule

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
