"""Orchestrator: registry, selection by capability and health, statistics under concurrency, workflows."""

from __future__ import annotations

import asyncio
import threading

import ag2
import pytest

from agentops.errors import ConfigError, ServerError, TimeLimitExceeded
from agentops.models import OfflineModel, rule
from agentops.orchestrator import AGENT_CALL, AgentStats, NoCapableAgent, Orchestrator
from agentops.testing import SlowModel


def agent(name: str, answer: str = "ok", **kw) -> ag2.Agent:
    return ag2.Agent(name, f"You are {name}.", config=OfflineModel(rules=[rule(name, answer)], **kw))


def broken(name: str) -> ag2.Agent:
    def boom(p):
        raise ServerError("simulated 503")

    return ag2.Agent(name, "x", config=OfflineModel(rules=[rule(name, boom)]))


def test_registry_validation():
    o = Orchestrator()
    o.register(agent("billing"), ["Billing", "refunds"])
    with pytest.raises(ConfigError, match="already registered"):
        o.register(agent("billing"), ["x"])
    with pytest.raises(ConfigError, match="no capabilities"):
        o.register(agent("empty"), [" "])
    with pytest.raises(ConfigError, match=r"ag2\.Agent"):
        o.register("not an agent", ["x"])
    with pytest.raises(ConfigError, match="healthy, degraded or down"):
        o.set_status("billing", "sleepy")
    with pytest.raises(ConfigError, match="no agent named"):
        o.set_status("ghost", "down")


def test_selection_by_capability_and_health():
    o = Orchestrator()
    o.register(agent("b_primary"), ["billing"])
    o.register(agent("a_backup"), ["billing"])
    o.register(agent("tech"), ["tech"])
    assert o.select("billing") == "a_backup"  # ties break by name
    o.set_status("a_backup", "degraded")
    assert o.select("BILLING") == "b_primary"  # healthy before degraded
    o.set_status("b_primary", "down")
    assert o.select("billing") == "a_backup"  # degraded before nothing
    o.set_status("a_backup", "down")
    with pytest.raises(NoCapableAgent, match=r"capability 'billing'; known capabilities: \['billing', 'tech'\]"):
        o.select("billing")
    with pytest.raises(NoCapableAgent):
        o.select("legal")


async def test_ask_routes_reports_and_counts_cost():
    seen = []
    o = Orchestrator(listeners=[lambda kind, payload: seen.append((kind, payload))])
    o.register(agent("tech", "Restart the router."), ["tech"])
    reply = await o.ask("tech", "my wifi is down")
    assert (reply.agent, reply.text) == ("tech", "Restart the router.")
    assert reply.tokens > 0 and reply.cost_usd > 0
    assert seen[0][0] == AGENT_CALL
    assert {k: seen[0][1][k] for k in ("agent", "capability", "outcome", "tokens")} == {
        "agent": "tech",
        "capability": "tech",
        "outcome": "ok",
        "tokens": reply.tokens,
    }


async def test_failures_degrade_then_success_rate_steers_selection():
    o = Orchestrator()
    o.register(broken("a_flaky"), ["billing"])
    o.register(agent("b_steady"), ["billing"])
    with pytest.raises(ServerError):
        await o.ask("billing", "refund")  # a_flaky is first by name
    # a_flaky's success rate is now 0: the next requests go to b_steady
    assert (await o.ask("billing", "refund")).agent == "b_steady"
    table = o.status_table()
    assert table.loc["a_flaky", "success_rate"] == 0.0 and table.loc["b_steady", "success_rate"] == 1.0
    for _ in range(3):
        o.set_status("b_steady", "down")
        with pytest.raises(ServerError):
            await o.ask("billing", "refund")
    assert o.status_table().loc["a_flaky", "status"] == "degraded"


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_statistics_under_many_concurrent_requests():
    loop = asyncio.get_running_loop()
    o = Orchestrator(clock=loop.time)
    o.register(agent("fast", latency_s=0.1), ["search"])
    o.register(agent("slow", latency_s=0.3), ["write"])
    o.register(agent("flaky_w", "no"), ["write"])
    o.set_status("flaky_w", "down")
    requests = [("search", f"q{i}") for i in range(120)] + [("write", f"w{i}") for i in range(80)]
    start = loop.time()
    replies = await asyncio.gather(*(o.ask(cap, text) for cap, text in requests))
    assert loop.time() - start == pytest.approx(0.3)  # every request ran concurrently
    assert [r.agent for r in replies] == ["fast"] * 120 + ["slow"] * 80
    table = o.status_table()
    assert table.loc["fast", "calls"] == 120 and table.loc["slow", "calls"] == 80
    assert table.loc["flaky_w", "calls"] == 0 and table.loc["flaky_w", "status"] == "down"
    assert table.loc["fast", "p50_ms"] == pytest.approx(100) and table.loc["slow", "p95_ms"] == pytest.approx(300)
    assert (table["in_flight"] == 0).all()
    assert table.loc["fast", "tokens"] == sum(r.tokens for r in replies[:120])
    assert table.loc["slow", "cost_usd"] == pytest.approx(sum(r.cost_usd for r in replies[120:]))


def test_agent_stats_is_thread_safe():
    stats = AgentStats()
    payload = {"agent": "a", "capability": "c", "outcome": "ok", "latency_s": 0.01, "tokens": 2, "cost_usd": 0.5}

    def hammer():
        for _ in range(500):
            stats(AGENT_CALL, payload)
            stats("other.kind", payload)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = stats.summary()["a"]
    assert s["calls"] == 4000 and s["tokens"] == 8000 and s["cost_usd"] == pytest.approx(2000)


def test_unpriced_calls_report_cost_none():
    stats = AgentStats()
    stats(AGENT_CALL, {"agent": "a", "outcome": "ok", "latency_s": 0.1, "tokens": 5, "cost_usd": None})
    assert stats.summary()["a"]["cost_usd"] is None


async def test_workflows_by_name():
    o = Orchestrator()
    name = o.register_workflow(
        {
            "name": "triage_then_reply",
            "stages": [
                {"name": "triage", "instructions": "Triage."},
                {"name": "reply", "depends_on": ["triage"], "instructions": "Reply."},
            ],
        }
    )
    with pytest.raises(ConfigError, match="already registered"):
        o.register_workflow({"name": name, "stages": [{"name": "a"}]})
    run = await o.run_workflow(name, "a customer asks for a refund", models=OfflineModel())
    assert run.status == "completed" and list(run.outputs) == ["triage", "reply"]
    with pytest.raises(ConfigError, match="no workflow named 'nope'"):
        await o.run_workflow("nope", "x", models=OfflineModel())


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_ask_past_its_time_limit_raises_a_clear_error_and_counts_a_failure():
    seen = []
    o = Orchestrator(listeners=[lambda kind, payload: seen.append(payload)])
    o.register(ag2.Agent("slowpoke", "x", config=SlowModel()), ["billing"])
    with pytest.raises(TimeLimitExceeded) as caught:
        await o.ask("billing", "refund please", timeout_s=2.5)
    exc = caught.value
    where = "agent 'slowpoke' (capability 'billing')"
    assert (exc.where, exc.limit_s, exc.parameter) == (where, 2.5, "timeout_s of Orchestrator.ask")
    assert str(exc).startswith(f"{where} exceeded its 2.5 s time limit: the model server answered too slowly")
    assert exc.__cause__ is None and exc.__suppress_context__  # no CancelledError chained into the report
    assert [p["outcome"] for p in seen] == ["error"] and seen[0]["latency_s"] >= 0
    assert o.stats.summary()["slowpoke"]["calls"] == 1


async def test_ask_timeout_is_validated():
    o = Orchestrator()
    o.register(agent("billing"), ["billing"])
    with pytest.raises(ConfigError, match=r"timeout_s must be > 0 seconds or None, got 0"):
        await o.ask("billing", "hi", timeout_s=0)
    assert (await o.ask("billing", "hi", timeout_s=30)).text == "ok"
