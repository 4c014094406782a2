"""Router: tier choice from features, escalation, budget pressure, eval comparison."""

from __future__ import annotations

import ag2
import pytest

from agentops.errors import ConfigError
from agentops.evals import run_suite
from agentops.models import OfflineModel
from agentops.routing import Router, RoutingPolicy, Tier, request_features, spend_pressure
from agentops.scenarios.cost_performance import SUPPORT_PROMPT, offline_rules_frame, support_suite, workload
from agentops.scenarios.cost_performance import offline_tiers as tiers
from agentops.usage import UsageMeter


def test_request_features_are_measurable():
    f = request_features("Calculate 3 x 19.99 with 8% tax", ["lookup"])
    assert f["reasoning_cues"] == ["calculate"] and f["numbers"] == 3 and f["tools"] == ["lookup"]
    assert not request_features("hello there")["code"]
    assert request_features("```python\nprint(1)\n```")["code"]


def test_policy_scores_and_cutoffs():
    policy = RoutingPolicy(cutoffs=(1.0, 2.0))
    assert policy(request_features("hi")) == (0, "score 0 (short plain request)")
    idx, why = policy(request_features("Explain why 2 + 2 = 4"))
    assert idx == 1 and "reasoning cue 'why'" in why and "score 1.5" in why
    with pytest.raises(ConfigError, match="long_prompt_tokens"):
        RoutingPolicy(long_prompt_tokens=0)


def test_router_validates_configuration():
    with pytest.raises(ConfigError, match="at least one tier"):
        Router([])
    with pytest.raises(ConfigError, match=r"duplicate|tier names"):
        Router([Tier("a", OfflineModel()), Tier("a", OfflineModel())])
    with pytest.raises(ConfigError, match="ModelConfig"):
        Tier("x", "gpt-4o")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fallback_at"):
        Router([Tier("a", OfflineModel())], fallback_at=0)
    with pytest.raises(ConfigError, match="overrides"):
        Router([Tier("a", OfflineModel())]).model().copy(temperature=0)


async def test_routes_hard_requests_to_strong_and_escalates_hedges():
    router = Router(tiers())
    agent = ag2.Agent("support", SUPPORT_PROMPT, config=router.model())
    easy = await agent.ask("What are your opening hours?")
    hard = await agent.ask("Calculate the total for 3 items at $19.99 with 8% tax.")
    hedged = await agent.ask("My package arrived damaged and the replacement is broken too, what now?")
    assert "9am" in easy.body and "$64.77" in hard.body and "refund" in hedged.body
    frame = router.frame()
    assert list(frame["tier"]) == ["cheap", "strong", "strong"]
    assert frame["escalated"].iloc[2] == "cheap (model hedged (low confidence))"
    report = await hedged.usage()  # both attempts are paid for and reported
    assert set(report.by_model) == {"offline-mini", "offline-large"}


async def test_validation_failure_escalates_and_max_escalations_zero_stops():
    ts = tiers()
    router = Router(ts, validate=lambda text: "Monday" in text and "Friday" in text and "9am" in text)
    reply = await ag2.Agent("s", SUPPORT_PROMPT, config=router.model()).ask("Do you ship to Canada?")
    assert router.decisions[-1].escalations == ("cheap (failed validation)",)
    assert "5-7" in reply.body
    stuck = Router(ts, validate=lambda text: False, max_escalations=0)
    await ag2.Agent("s", SUPPORT_PROMPT, config=stuck.model()).ask("Do you ship to Canada?")
    assert stuck.decisions[-1].tier == "cheap"


async def test_budget_pressure_falls_back_to_cheapest_without_escalation():
    level = {"spent": 0.9}
    router = Router(tiers(), pressure=lambda: level["spent"], fallback_at=0.8)
    agent = ag2.Agent("s", SUPPORT_PROMPT, config=router.model())
    await agent.ask("Compare the Basic and Pro plans for a team of 12 users.")
    d = router.decisions[-1]
    assert d.tier == "cheap" and d.escalations == () and "budget pressure" in d.reason
    level["spent"] = 0.1
    await agent.ask("Compare the Basic and Pro plans for a team of 12 users.")
    assert router.decisions[-1].tier == "strong"


def test_spend_pressure_reads_a_meter():
    from ag2.events import Usage

    meter = UsageMeter()
    meter.add(Usage(prompt_tokens=1000, completion_tokens=1000), "offline-1", None)
    assert spend_pressure(meter, 0.004)() == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        spend_pressure(meter, 0)


async def test_routed_matches_strong_pass_rate_at_lower_cost():
    suite = support_suite()
    ts = tiers()
    results = {}
    for name, cfg in (("cheap", ts[0].config), ("strong", ts[1].config), ("routed", Router(ts).model())):
        run = await run_suite(suite, ag2.Agent("s", SUPPORT_PROMPT, config=cfg), concurrency=4, run_id=name)
        results[name] = run.totals()
    assert results["routed"]["pass_rate"] >= results["strong"]["pass_rate"] == 1.0
    assert results["cheap"]["pass_rate"] < 1.0
    assert results["routed"]["cost_usd"] < 0.7 * results["strong"]["cost_usd"]


def test_scenario_helpers():
    assert len(offline_rules_frame()) == len(support_suite().cases) == 12
    w = workload(40, seed=1)
    assert len(w) == 40 and w == workload(40, seed=1)


async def test_run_workload_reports_sources_and_costs():
    from agentops.caching import HashingEmbedder, ResponseCache, SemanticCache
    from agentops.workload import run_workload

    exact = ResponseCache()
    agent = ag2.Agent("s", SUPPORT_PROMPT, config=exact.wrap(Router(tiers()).model()))
    semantic = SemanticCache(HashingEmbedder(), threshold=0.9)
    qs = ["Do you ship to Canada?", "Do you ship to Canada?", "What is your refund policy?"]
    frame = await run_workload(agent, qs, semantic=semantic, exact=exact)
    assert list(frame["source"]) == ["model", "semantic cache", "model"]
    assert frame["cost_usd"].iloc[1] == 0.0 and frame["cost_usd"].iloc[0] > 0
    assert list(frame["tier"]) == ["offline-mini", "-", "offline-mini"]


async def test_run_workload_shows_an_unpriced_model_as_unknown_cost_not_zero(monkeypatch):
    from agentops import usage as usage_mod
    from agentops.models import OfflineModel
    from agentops.workload import run_workload

    monkeypatch.setattr(usage_mod, "_warned", {("ghost-workload-model", None)})
    agent = ag2.Agent("s", SUPPORT_PROMPT, config=OfflineModel(model="ghost-workload-model"))
    frame = await run_workload(agent, ["Do you ship to Canada?"])
    assert frame["tokens"].iloc[0] > 0 and frame["cost_usd"].isna().iloc[0]
