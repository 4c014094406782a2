"""Delegation: limits, guards, concurrency, failure semantics, budget stop and the cost tree."""

from __future__ import annotations

import asyncio
import typing
import warnings

import matplotlib
import pytest
from ag2.middleware import BaseMiddleware
from hypothesis import given
from hypothesis import strategies as st

from agentops.budgets import Budget, InProcessLedger
from agentops.delegation import (
    Decomposition,
    DelegationLimits,
    Delegator,
    Specialist,
    TaskNode,
    Team,
    plot_cost_tree,
)
from agentops.errors import ConfigError, ServerError
from agentops.models import OfflineModel, json_rule, rule
from agentops.scenarios.advanced import LAUNCH_TASK, delegation
from agentops.usage import UnpricedModelWarning, cost_usd

matplotlib.use("Agg")


def model(**kw) -> OfflineModel:
    return OfflineModel(rules=delegation().rules, **kw)


def statuses(run) -> dict[str, str]:
    return {n.task if n.status != "refused" else f"{n.id}:{n.task}": n.status for n in run.root.walk()}


async def test_launch_tree_structure_guard_and_missing_leaf():
    m = model()
    run = await Delegator(m).run(LAUNCH_TASK)
    frame = run.frame()
    assert list(frame.index) == ["0", "0.1", "0.1.1", "0.1.2", "0.2", "0.3", "0.3.1", "0.3.2", "0.3.3", "0.4"]
    assert frame.loc["0.3.1", "status"] == "refused" and "cycle" in frame.loc["0.3.1", "reason"]
    # the failed leaf was retried once, then reported missing to its parent's synthesis
    leaf = frame.loc["0.4"]
    assert leaf["status"] == "failed" and "EmptyOutputError" in leaf["reason"]
    assert run.root.children[3].attempts == 3  # its plan, then the answer twice
    assert run.missing == ["Check legal approval"]
    assert run.answer == "Plan the product launch: combined 3 of 4 results; missing: Check legal approval."
    assert not run.complete and run.stopped_by is None


async def test_cost_rollup_equals_sum_of_node_usage_and_model_usage():
    m = model()
    run = await Delegator(m).run(LAUNCH_TASK)
    nodes = list(run.root.walk())
    totals = run.totals()
    assert totals["tokens"] == sum(n.tokens for n in nodes) == m.usage.total_tokens
    assert totals["calls"] == sum(n.calls for n in nodes) == m.calls
    assert totals["cost_usd"] == pytest.approx(sum(n.cost_usd for n in nodes))
    assert totals["cost_usd"] == pytest.approx(cost_usd(m.usage, m.model))
    frame = run.frame()
    assert frame.loc["0.1", "subtree_tokens"] == frame.loc[["0.1", "0.1.1", "0.1.2"], "tokens"].sum()
    # critical path in calls: root plan+synth (2) + Research the market's plan+synth (2) + one leaf (1)
    assert totals["critical_path_calls"] == 5


async def test_max_depth_zero_solves_the_root_directly():
    m = model()
    run = await Delegator(m, limits=DelegationLimits(max_depth=0)).run(LAUNCH_TASK)
    assert run.root.status == "solved" and run.root.calls == 1 and not run.root.children
    assert [r.rule for r in m.log] == ["solver: answer a leaf"]


async def test_max_breadth_refuses_extra_subtasks_visibly():
    run = await Delegator(model(), limits=DelegationLimits(max_depth=1, max_breadth=2)).run(LAUNCH_TASK)
    kids = run.root.children
    assert [k.status for k in kids] == ["solved", "solved", "refused", "refused"]
    assert kids[2].reason == "over max_breadth=2" and kids[2].calls == 0


async def test_max_calls_is_a_hard_cap():
    m = model()
    run = await Delegator(m, limits=DelegationLimits(max_calls=4, concurrency=1)).run(LAUNCH_TASK)
    assert m.calls == 4 == run.totals()["calls"]
    assert any(n.status == "limit" and "max_calls=4" in n.reason for n in run.root.walk())
    assert run.root.status == "partial" and run.answer.startswith("[partial]")


async def test_duplicate_siblings_and_empty_subtasks_are_refused():
    m = OfflineModel(
        rules=[
            json_rule(
                "plan",
                lambda p: {"subtasks": ["A", " a ", "", "B"]},
                system_contains="you decompose tasks",
                when=lambda p: "root" in p.user,
            ),
            *delegation().rules,
        ]
    )
    run = await Delegator(m, limits=DelegationLimits(max_depth=1)).run("root")
    assert [(k.task, k.status, k.reason) for k in run.root.children] == [
        ("A", "solved", None),
        ("a", "refused", "duplicate of a sibling"),
        ("(empty)", "refused", "empty subtask"),
        ("B", "solved", None),
    ]


async def test_unreadable_plan_is_solved_directly():
    m = OfflineModel(rules=[rule("plan", "no json at all", system_contains="you decompose tasks"), *delegation().rules])
    run = await Delegator(m).run("Do a thing")
    assert run.root.status == "solved" and run.root.reason == "plan unreadable; solved directly"


async def test_retryable_failure_is_retried_and_recovers():
    seen = {"n": 0}

    def flaky(p):
        seen["n"] += 1
        if seen["n"] == 1:
            raise ServerError("simulated 503")
        return "fine"

    m = OfflineModel(rules=[rule("solver", flaky, system_contains="you complete one small task")])
    run = await Delegator(m, limits=DelegationLimits(max_depth=0, retries=2)).run("x")
    assert run.root.status == "solved" and run.root.result == "fine"
    assert run.root.attempts == 2 and run.root.reason == "recovered on attempt 2"
    assert run.root.calls == 2  # the failed attempt is counted in the node's calls


async def test_non_retryable_failure_is_not_retried():
    def refuse(p):
        raise ConfigError("bad")

    m = OfflineModel(rules=[rule("solver", refuse, system_contains="you complete one small task")])
    run = await Delegator(m, limits=DelegationLimits(max_depth=0, retries=3)).run("x")
    assert run.root.status == "failed" and run.root.attempts == 1 and "ConfigError: bad" in run.root.reason


class _Order(BaseMiddleware):
    log: typing.ClassVar[list[str]] = []

    async def on_llm_call(self, call_next, events, context):
        type(self).log.append("start")
        try:
            return await call_next(events, context)
        finally:
            type(self).log.append("end")


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_siblings_run_concurrently_on_a_simulated_clock():
    loop = asyncio.get_running_loop()
    m = model(latency_s=0.2)
    tree = Delegator(m, limits=DelegationLimits(max_depth=1, max_breadth=8, concurrency=8), clock=loop.time)
    start = loop.time()
    run = await tree.run("Run 8 independent checks")
    elapsed = loop.time() - start
    assert len(run.root.children) == 8 and all(c.status == "solved" for c in run.root.children)
    assert elapsed == pytest.approx(0.6)  # plan + 8 leaves side by side + synthesis
    assert run.totals()["latency_s"] == pytest.approx(2.0)  # 10 calls of 0.2 s
    assert run.totals()["critical_path_s"] == pytest.approx(0.6)


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_concurrency_limit_bounds_calls_in_flight():
    loop = asyncio.get_running_loop()
    tree = Delegator(model(latency_s=0.2), limits=DelegationLimits(max_depth=1, max_breadth=8, concurrency=2))
    start = loop.time()
    await tree.run("Run 8 independent checks")
    assert loop.time() - start == pytest.approx(0.2 * (1 + 4 + 1))  # 8 leaves two at a time


async def test_event_ordering_all_leaves_start_before_any_ends():
    from ag2 import Middleware

    _Order.log = []
    m = model(latency_s=0.01)
    tree = Delegator(m, limits=DelegationLimits(max_depth=1, max_breadth=4, concurrency=4))
    tree.solver.add_middleware(Middleware(_Order))
    run = await tree.run("Run 4 independent checks")
    assert [c.status for c in run.root.children] == ["solved"] * 4
    assert _Order.log == ["start"] * 4 + ["end"] * 4


async def test_budget_stops_the_whole_tree_with_partial_results():
    m = model()
    ledger = InProcessLedger()
    tree = Delegator(
        m,
        budgets=[Budget("tree", scope="agent", max_tokens=700)],
        ledger=ledger,
        limits=DelegationLimits(concurrency=1),
    )
    run = await tree.run(LAUNCH_TASK)
    assert run.stopped_by == "budget 'tree'" and not run.complete
    found = {n.status for n in run.root.walk()}
    assert "budget" in found and "partial" in found
    assert run.root.status == "partial" and run.answer.startswith("[partial]")
    assert any(
        "[missing: budget" in (n.result or "") or "[missing: skipped" in (n.result or "") for n in run.root.walk()
    )
    account = next(a for a in ledger.accounts() if a["budget"] == "tree")
    assert account["spent_tokens"] <= 700
    assert run.totals()["tokens"] == m.usage.total_tokens  # nothing uncounted, even when stopped


async def test_default_ledger_is_one_pool_per_run():
    tree = Delegator(model(), budgets=[Budget("tree", scope="global", max_tokens=100_000)])
    first, second = await tree.run(LAUNCH_TASK), await tree.run(LAUNCH_TASK)
    assert first.stopped_by is None and second.stopped_by is None


def test_bad_configuration_is_refused():
    with pytest.raises(ConfigError, match="max_depth"):
        DelegationLimits(max_depth=-1)
    with pytest.raises(ConfigError, match="one pool"):
        Delegator(model(), budgets=[Budget("c", max_tokens=10)])
    with pytest.raises(ConfigError, match="DelegationLimits"):
        Delegator(model(), limits={"max_depth": 1})
    with pytest.raises(ConfigError, match="register_price"):
        Delegator(OfflineModel("no-price-model"), budgets=[Budget("usd", scope="agent", max_usd=0.1)])


async def test_empty_task_is_refused():
    with pytest.raises(ConfigError, match="non-empty"):
        await Delegator(model()).run("  ")


async def test_unpriced_model_keeps_tokens_and_reports_cost_none():
    m = model(model="house-model-x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnpricedModelWarning)
        run = await Delegator(m, limits=DelegationLimits(max_depth=1)).run(LAUNCH_TASK)
    assert run.totals()["cost_usd"] is None and run.totals()["tokens"] == m.usage.total_tokens > 0


def test_decomposition_validates_structure():
    assert Decomposition.model_validate({"subtasks": ["a"]}).subtasks == ["a"]
    assert Decomposition().subtasks == []


@given(
    st.recursive(
        st.tuples(st.integers(0, 500), st.none()),
        lambda kids: st.tuples(st.integers(0, 500), st.lists(kids, max_size=3)),
        max_leaves=12,
    )
)
def test_subtree_rollup_is_the_sum_over_the_subtree(shape):
    def build(s, depth=0, ident="0"):
        tokens, kids = s
        node = TaskNode(
            ident,
            ident,
            depth,
            prompt_tokens=tokens,
            completion_tokens=1,
            calls=1,
            cost_usd=tokens / 1e6,
            latency_s=tokens / 1e3,
        )
        node.children = [build(k, depth + 1, f"{ident}.{i}") for i, k in enumerate(kids or [])]
        return node

    root = build(shape)
    sub = root.subtree()
    nodes = list(root.walk())
    assert sub["tokens"] == sum(n.tokens for n in nodes) and sub["calls"] == len(nodes)
    assert sub["cost_usd"] == pytest.approx(sum(n.cost_usd for n in nodes))
    assert sub["critical_path_s"] <= sub["latency_s"] + 1e-9


async def test_team_delegates_to_every_specialist_and_rolls_up_cost():
    m = model()
    team = Team(
        m,
        [
            Specialist("researcher", "You research facts.", "Research a topic"),
            Specialist("writer", "You write copy.", "Write copy"),
        ],
    )
    assert sorted(t.name for t in team.director.tools) == ["task_researcher", "task_writer"]
    run = await team.ask("Launch plan")
    assert run.answer == "Director summary: Research notes on: Launch plan Draft copy for: Launch plan"
    frame = run.frame()
    assert list(frame["task"]) == ["Launch plan", "researcher", "writer"]
    assert frame.loc["0", "subtree_tokens"] == m.usage.total_tokens
    assert frame.loc["0", "subtree_calls"] == m.calls == 4


def test_team_validation():
    with pytest.raises(ConfigError, match="at least one"):
        Team(model(), [])
    s = Specialist("a", "x", "y")
    with pytest.raises(ConfigError, match="unique"):
        Team(model(), [s, s])


async def test_plot_cost_tree_labels_and_legend():
    run = await Delegator(model()).run(LAUNCH_TASK)
    ax = plot_cost_tree(run)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["solved", "synthesized", "failed", "refused"]
    assert ax.get_title().startswith("Delegation tree") and ax.get_ylabel() == "depth (0 = root)"
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_team_nodes_carry_each_agents_model_latency():
    loop = asyncio.get_running_loop()
    team = Team(
        model(latency_s=0.2),
        [Specialist("researcher", "You research facts.", "Research"), Specialist("writer", "You write copy.", "Write")],
        clock=loop.time,
    )
    run = await team.ask("Prepare the launch")
    frame = run.frame()
    assert frame.loc["0", "latency_s"] == pytest.approx(0.4)  # the director's two calls
    assert frame.loc["0.1", "latency_s"] == pytest.approx(0.2)
    assert frame.loc["0.2", "latency_s"] == pytest.approx(0.2)
