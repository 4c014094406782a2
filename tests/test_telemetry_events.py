"""Tests for Telemetry.listener: observability-hook events as counters, span events and log lines; bounded labels."""

from __future__ import annotations

import json

import ag2
import pytest
from ag2.middleware import BaseMiddleware
from telemetry_support import CANARY, EVENTS, log_lines, logged_telemetry, scrape

from agentops.models import OfflineModel
from agentops.telemetry import (
    EVENT_KINDS,
    Telemetry,
)


@pytest.fixture()
def telemetry():
    yield from logged_telemetry()


# -- observability hook -----------------------------------------------------------------------------


def test_listener_turns_each_event_into_counter_span_event_and_log(telemetry):
    assert [k for k, _ in EVENTS] == list(EVENT_KINDS)
    for kind, payload in EVENTS:
        telemetry.listener(kind, payload)
    m = scrape(telemetry.registry)
    assert (
        m[
            (
                "agentops_guardrail_findings_total",
                (("action", "redact"), ("agent", "writer"), ("entity_type", "EMAIL"), ("where", "input")),
            )
        ]
        == 1
    )
    assert m[("agentops_tool_denials_total", (("agent", "writer"), ("tool", "delete_file")))] == 1
    assert (
        m[
            (
                "agentops_budget_refusals_total",
                (("agent", "writer"), ("budget", "conversation"), ("scope", "shared")),
            )
        ]
        == 1
    )
    assert (
        m[
            (
                "agentops_escalations_total",
                (
                    ("handler", "human"),
                    ("outcome", "approved"),
                    ("rule", "refund_over_500"),
                    ("severity", "high"),
                ),
            )
        ]
        == 1
    )
    assert m[("agentops_handoff_refusals_total", (("source", "planner"), ("target", "reviewer")))] == 1
    assert m[("agentops_malformed_answers_total", (("agent", "writer"), ("model", "offline-1")))] == 1
    events = telemetry.store.events()
    assert list(events["event"]) == [k for k, _ in EVENTS]
    assert events["attributes"].iloc[1]["reason"] == "scope files:write missing"
    assert events["attributes"].iloc[4]["from"] == "planner"
    logs = log_lines(telemetry)
    assert [x["event"] for x in logs] == [k for k, _ in EVENTS] and {x["level"] for x in logs} == {"WARNING"}
    assert logs[4]["payload_from"] == "planner" and logs[4]["to"] == "reviewer"


async def test_listener_inside_a_turn_adds_a_span_event_to_that_span(telemetry):

    class Flag(BaseMiddleware):
        async def on_llm_call(self, call_next, events, context):
            telemetry.listener(
                "guardrail.finding",
                {"agent": "a", "entity_type": "API_KEY", "where": "output", "action": "block"},
            )
            return await call_next(events, context)

    agent = ag2.Agent("a", "Be brief.", config=OfflineModel(seed=0), middleware=[Flag])
    telemetry.instrument(agent)
    await agent.ask("hi")
    ev = telemetry.store.events().iloc[0]
    chat = telemetry.store.llm_calls().iloc[0]
    assert ev["span_id"] == chat["span_id"] and ev["span"] == "chat offline-1"
    assert not telemetry.store.spans()["name"].str.startswith("agentops.event").any()


def test_vocabulary_is_kept_whole_while_free_text_is_redacted(telemetry):
    telemetry.listener(
        "guardrail.finding",
        {"agent": "support", "entity_type": "SECRET", "where": "tool_args", "action": "redact"},
    )
    telemetry.listener(
        "tool.denied", {"agent": "support", "tool": "send_email", "reason": "may not mail ops@example.com"}
    )
    telemetry.listener("tool.denied", {"agent": "bot ops@example.com", "tool": "x", "reason": "r"})
    a = list(telemetry.store.events()["attributes"])
    assert a[0] == {"agent": "support", "entity_type": "SECRET", "where": "tool_args", "action": "redact"}
    assert a[1] == {"agent": "support", "tool": "send_email", "reason": "may not mail [EMAIL_ADDRESS]"}
    assert a[2]["agent"] == "[REDACTED]"  # a name carrying PII is dropped whole, not half-rewritten
    m = scrape(telemetry.registry)
    key = (("action", "redact"), ("agent", "support"), ("entity_type", "SECRET"), ("where", "tool_args"))
    assert m[("agentops_guardrail_findings_total", key)] == 1
    assert m[("agentops_tool_denials_total", (("agent", "[REDACTED]"), ("tool", "x")))] == 1
    logs = log_lines(telemetry)
    assert logs[0]["event"] == logs[0]["message"] == "guardrail.finding"
    assert (logs[0]["entity_type"], logs[0]["where"]) == ("SECRET", "tool_args")
    assert logs[1]["reason"] == "may not mail [EMAIL_ADDRESS]" and logs[2]["agent"] == "[REDACTED]"


async def test_guardrail_middleware_findings_reach_spans_counters_and_logs(telemetry):
    from agentops.guardrails import GuardrailMiddleware

    guard = GuardrailMiddleware(agent="support", listeners=[telemetry.listener])
    agent = ag2.Agent("support", "Be brief.", config=OfflineModel(seed=0), middleware=[guard])
    telemetry.instrument(agent, workflow="desk")
    await agent.ask(f"My key is {CANARY}, mail me at ops@example.com")
    turn = telemetry.store.turns().iloc[0]
    events = telemetry.store.events()
    findings = events[events["event"] == "guardrail.finding"]
    assert sorted(a["entity_type"] for a in findings["attributes"]) == ["EMAIL_ADDRESS", "SECRET"]
    assert set(findings["span_id"]) == {turn["span_id"]}  # events on the turn's span
    assert {a["action"] for a in findings["attributes"]} == {"redact"}
    m = scrape(telemetry.registry)
    for entity in ("EMAIL_ADDRESS", "SECRET"):
        labels = (("action", "redact"), ("agent", "support"), ("entity_type", entity), ("where", "input"))
        assert m[("agentops_guardrail_findings_total", labels)] == 1
    lines = [x for x in log_lines(telemetry) if x["event"] == "guardrail.finding"]
    assert sorted(x["entity_type"] for x in lines) == ["EMAIL_ADDRESS", "SECRET"]
    assert {x["trace_id"] for x in lines} == {turn["trace_id"]}
    everything = telemetry.buf.getvalue() + json.dumps(telemetry.store.records())
    assert CANARY not in everything and "ops@example.com" not in everything


def test_listener_never_raises(telemetry):
    telemetry.listener("something.new", {"x": 1})
    telemetry.listener("guardrail.finding", None)  # type: ignore[arg-type]
    telemetry.listener("budget.refused", ["not", "a", "mapping"])  # type: ignore[arg-type]
    kinds = [x["event"] for x in log_lines(telemetry)]
    assert "something.new" in kinds and "listener.failed" in kinds


def test_label_values_are_bounded():
    t = Telemetry()
    t.metrics.label.limit = 3
    for i in range(6):
        t.listener("tool.denied", {"agent": "a", "tool": f"tool_{i}", "reason": "x"})
    tools = sorted(dict(k[1])["tool"] for k in scrape(t.registry) if k[0] == "agentops_tool_denials_total")
    assert tools == ["other", "tool_0", "tool_1", "tool_2"]
