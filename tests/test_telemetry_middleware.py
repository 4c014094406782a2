"""Tests for the telemetry middleware on real AG2 turns: GenAI spans with cost, correlated log lines,
failures, clocks, and instrumenting many agents."""

from __future__ import annotations

import ag2
import pytest
from ag2.middleware import BaseMiddleware
from prometheus_client import CollectorRegistry
from telemetry_support import get_weather, log_lines, logged_telemetry, scrape, weather_model

from agentops.errors import ConfigError
from agentops.models import Faults, OfflineModel, ServerError
from agentops.pricing import cost
from agentops.telemetry import (
    SimulatedClock,
    Telemetry,
    TelemetryError,
)
from agentops.telemetry.metrics import AgentOpsMetrics


@pytest.fixture()
def telemetry():
    yield from logged_telemetry()


# -- one instrumented conversation ------------------------------------------------------------------


async def test_spans_follow_genai_conventions_and_carry_cost(telemetry):
    cfg = weather_model()
    agent = ag2.Agent("weather", "Be brief.", config=cfg, tools=[get_weather])
    telemetry.instrument(agent, workflow="demo")
    reply = await agent.ask("What's the weather?")
    assert "sunny in Paris" in reply.body
    spans = telemetry.store.spans()
    names = list(spans["name"])
    assert names.count("chat offline-1") == 2
    assert "execute_tool get_weather" in names and "invoke_agent weather" in names
    chats = telemetry.store.llm_calls()
    for row in chats.itertuples():
        a = row.attributes
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "offline"
        assert a["gen_ai.request.model"] == "offline-1"
        assert "gen_ai.agent.name" not in a  # written on the turn only; the store attributes calls to it
        assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # content off
    assert set(chats["agent"]) == {"weather"} and set(chats["workflow"]) == {"demo"}
    assert chats["time_s"].notna().all() and (chats["latency_s"] >= 0).all()  # from span timestamps
    usage = spans[spans["operation"] == "usage"]
    assert len(usage) == 2 and set(usage["agent"]) == {"weather"} and set(usage["workflow"]) == {"demo"}
    records = cfg.calls_frame()
    assert list(chats["input_tokens"]) == list(records["prompt_tokens"])
    assert list(chats["output_tokens"]) == list(records["completion_tokens"])
    from ag2.events import Usage

    expected = [
        cost(Usage(prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens), "offline-1")
        for r in records.itertuples()
    ]
    assert chats["cost_usd"].tolist() == pytest.approx(expected)
    turn = telemetry.store.turns().iloc[0]
    assert turn["cost_usd"] == pytest.approx(sum(expected))
    assert turn["input_tokens"] == records["prompt_tokens"].sum()
    tool = telemetry.store.tool_calls().iloc[0]
    assert tool["tool"] == "get_weather" and tool["outcome"] == "success" and tool["agent"] == "weather"
    assert spans["trace_id"].nunique() == 1


async def test_log_lines_correlate_with_spans(telemetry):
    agent = ag2.Agent("weather", "Be brief.", config=weather_model(), tools=[get_weather])
    telemetry.instrument(agent)
    await agent.ask("What's the weather?")
    lines = log_lines(telemetry)
    assert [x["event"] for x in lines] == ["llm.call", "tool.call", "llm.call", "agent.turn"]
    spans = telemetry.store.spans().set_index("span_id")
    for line in lines:
        span = spans.loc[line["span_id"]]
        assert span["trace_id"] == line["trace_id"]
        op = {"llm.call": "chat", "tool.call": "execute_tool", "agent.turn": "invoke_agent"}[line["event"]]
        assert span["operation"] == op
    turn = lines[-1]
    assert turn["agent"] == "weather" and turn["model"] == "offline-1" and turn["outcome"] == "success"
    assert turn["input_tokens"] == sum(x["input_tokens"] for x in lines if x["event"] == "llm.call")
    assert turn["cost_usd"] == pytest.approx(sum(x["cost_usd"] for x in lines if x["event"] == "llm.call"))
    assert turn["latency_s"] >= 0 and "request" not in turn  # content capture off


async def test_failed_call_is_an_error_in_logs_spans_and_metrics(telemetry):
    cfg = OfflineModel("offline-1", seed=0, faults=Faults(server_error=1.0))
    agent = ag2.Agent("flaky", "Be brief.", config=cfg)
    telemetry.instrument(agent)
    with pytest.raises(ServerError):
        await agent.ask("hello")
    levels = {x["event"]: (x["level"], x["outcome"], x["error_type"]) for x in log_lines(telemetry)}
    assert levels == {
        "llm.call": ("WARNING", "error", "ServerError"),
        "agent.turn": ("ERROR", "error", "ServerError"),
    }
    chat = telemetry.store.llm_calls().iloc[0]
    assert chat["status"] == "ERROR" and chat["outcome"] == "error" and chat["error_type"] == "ServerError"
    assert chat["name"] == "chat" and chat["model"] == "offline-1"  # labelled from the turn's config
    m = scrape(telemetry.registry)
    assert (
        m[
            (
                "ag2_agent_turns_total",
                (("agent", "flaky"), ("error_type", "ServerError"), ("outcome", "error")),
            )
        ]
        == 1
    )


async def test_an_agent_without_a_config_is_named_and_priced_from_each_call(telemetry):
    agent = ag2.Agent("late", "Be brief.")  # the config comes with each ask
    telemetry.instrument(agent)
    await agent.ask("hi", config=OfflineModel("offline-mini", seed=0))
    chat = telemetry.store.llm_calls().iloc[0]
    assert chat["name"] == "chat offline-mini" and chat["model"] == "offline-mini"
    assert chat["cost_usd"] > 0 and chat["provider"] == "offline"


async def test_spans_opened_between_ag2_and_this_layer_are_never_annotated(telemetry):
    """Annotations go to the span AG2 opened for the hook, found by its type, not by position."""
    tracer = telemetry.tracer_provider.get_tracer("test")

    class Spanner(BaseMiddleware):
        async def on_llm_call(self, call_next, events, context):
            with tracer.start_as_current_span("someone else's span"):
                return await call_next(events, context)

    ag2_spans, ag2_metrics, ours = telemetry.middleware("a")
    agent = ag2.Agent("a", "Be brief.", config=OfflineModel(seed=0), middleware=[ag2_spans, ag2_metrics, Spanner, ours])
    await agent.ask("hi")
    spans = telemetry.store.spans().set_index("name")
    assert "agentops.cost_usd" not in spans.loc["someone else's span", "attributes"]
    assert "agentops.cost_usd" not in spans.loc["chat offline-1", "attributes"]  # not found: skipped
    assert telemetry.store.turns()["cost_usd"].iloc[0] > 0  # the turn total and the logs still have it
    assert [x["event"] for x in log_lines(telemetry)] == ["llm.call", "agent.turn"]


async def test_unpriced_model_counts_and_warns_once(telemetry):
    agent = ag2.Agent("x", "Be brief.", config=OfflineModel("no-such-model-xyz", seed=0))
    telemetry.instrument(agent)
    await agent.ask("one")
    await agent.ask("two")
    warnings = [x for x in log_lines(telemetry) if x["event"] == "cost.unpriced"]
    assert len(warnings) == 1 and "register_price" in warnings[0]["error"]
    assert telemetry.store.llm_calls()["cost_usd"].isna().all()
    assert telemetry.store.turns()["cost_usd"].isna().all()  # the turn's cost is unknown, not $0
    assert [x["cost_usd"] for x in log_lines(telemetry) if x["event"] == "agent.turn"] == [None, None]
    assert scrape(telemetry.registry)[("agentops_unpriced_llm_calls_total", (("model", "no-such-model-xyz"),))] == 2


async def test_simulated_clock_records_offline_latency_without_waiting(monkeypatch):
    import asyncio

    real_sleep, slept = asyncio.sleep, []

    async def spy(delay, *args, **kwargs):
        slept.append(delay)
        return await real_sleep(0, *args)

    monkeypatch.setattr(asyncio, "sleep", spy)
    cfg = weather_model(latency_s=(2.0, 4.0), sleep=False)
    clock = SimulatedClock(start=100.0, follow=[cfg])
    t = Telemetry(clock=clock)
    agent = ag2.Agent("weather", "Be brief.", config=cfg, tools=[get_weather])
    t.instrument(agent)
    await agent.ask("What's the weather?")
    clock.advance(60)
    await agent.ask("hello")
    calls = cfg.calls_frame()
    chats, turns = t.store.llm_calls(), t.store.turns()
    assert chats["latency_s"].tolist() == pytest.approx(calls["latency_s"].tolist())
    assert turns["time_s"].iloc[0] == 100.0
    assert turns["latency_s"].iloc[0] == pytest.approx(calls["latency_s"].iloc[:2].sum())
    assert turns["time_s"].iloc[1] == pytest.approx(160.0 + calls["latency_s"].iloc[:2].sum())
    assert not [d for d in slept if d and d >= 2.0]  # nobody waited for the simulated latency


def test_simulated_clock_rejects_bad_use():
    clock = SimulatedClock()
    with pytest.raises(ConfigError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ConfigError, match="OfflineModel"):
        clock.follow(object())
    assert clock.advance_to(5.0) == 5.0 and clock.advance_to(1.0) == 5.0


# -- instrumenting many agents ----------------------------------------------------------------------


class _Graph:
    def __init__(self, agents):
        self.agents = {a.name: a for a in agents}


async def test_instrument_many_agents_is_idempotent_and_shares_metrics():
    reg = CollectorRegistry()
    t = Telemetry(registry=reg)
    cfg = OfflineModel(seed=0)
    a, b, c = (ag2.Agent(n, "Be brief.", config=cfg) for n in ("a", "b", "c"))
    assert t.instrument([a, b]) == [a, b]
    assert t.instrument(_Graph([b, c])) == [b, c]
    assert t.instrument(a) == [a]
    assert [len(x.middleware) for x in (a, b, c)] == [3, 3, 3]
    shared = {id(x.middleware[1].middleware) for x in (a, b, c)}
    assert len(shared) == 1
    assert Telemetry(registry=reg).metrics is t.metrics  # one MetricsMiddleware per registry
    for agent in (a, b, c):
        await agent.ask("hi")
    m = scrape(reg)
    assert {k[1][0][1] for k in m if k[0] == "ag2_agent_turns_total"} == {"a", "b", "c"}


def test_instrument_rejects_non_agents_and_a_second_telemetry():
    t = Telemetry()
    with pytest.raises(ConfigError, match=r"ag2\.Agent"):
        t.instrument(["not an agent"])
    with pytest.raises(ConfigError, match="iterable"):
        t.instrument(42)
    agent = ag2.Agent("a", "x", config=OfflineModel())
    t.instrument(agent)
    with pytest.raises(TelemetryError, match="another Telemetry"):
        Telemetry().instrument(agent)


def test_metrics_registry_collision_is_a_clear_error():
    from ag2.middleware.builtin import MetricsMiddleware

    reg = CollectorRegistry()
    MetricsMiddleware(reg)
    with pytest.raises(TelemetryError, match="fresh CollectorRegistry"):
        AgentOpsMetrics.for_registry(reg)
