"""Tests for agentops.evals.runner and agentops.evals.targets: concurrency, errors, usage, role graphs, workflows."""

from __future__ import annotations

import asyncio

import ag2
import pytest
from evals_support import DATA, case, respond, suite_of

from agentops import evals as ev
from agentops.errors import ConfigError
from agentops.evals import register_target
from agentops.evals.cases import suite_from_dict
from agentops.evals.demo import demo_agent
from agentops.evals.targets import build_judge, build_target, register_judge, role_graph_target, workflow_target
from agentops.models import OfflineModel, rule
from agentops.pricing import cost

# ------------------------------------------------------------------------------------------------
# The runner
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
async def test_concurrency_limit_is_respected_and_results_keep_suite_order(limit):
    in_flight, peak = 0, 0

    async def target(prompt: str) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01 * (10 - int(prompt)))  # later cases finish first
        in_flight -= 1
        return prompt

    s = suite_of(*[case({"type": "equals", "value": str(i)}, id=f"c{i}", prompt=str(i)) for i in range(10)])
    run = await ev.run_suite(s, target, concurrency=limit, progress=False)
    assert peak == limit
    assert [c.case_id for c in run.cases] == [f"c{i}" for i in range(10)]
    assert run.pass_rate() == 1.0


async def test_target_errors_timeouts_and_bad_returns_are_recorded():
    async def boom(prompt):
        raise ValueError("bad input\nsecond line")

    async def slow(prompt):
        await asyncio.sleep(1)
        return "late"

    async def wrong(prompt):
        return 42

    s = suite_of(case({"type": "contains_any", "values": ["x"]}))
    r = (await ev.run_suite(s, boom, progress=False)).cases[0]
    assert r.status == "error" and r.error == "ValueError: bad input" and not r.passed
    r = (await ev.run_suite(s, slow, timeout_s=0.05, progress=False)).cases[0]
    assert r.status == "error" and "timed out after 0.05 s" in r.error
    r = (await ev.run_suite(s, wrong, progress=False)).cases[0]
    assert r.status == "error" and "must return a str" in r.error


async def test_case_timeout_wins_over_the_run_timeout():
    s = suite_of(case({"type": "contains_any", "values": ["late"]}, timeout_s=2))

    async def slow(prompt):
        await asyncio.sleep(0.1)
        return "late"

    assert (await ev.run_suite(s, slow, timeout_s=0.01, progress=False)).cases[0].passed


async def test_run_suite_argument_validation():
    s = suite_of(case({"type": "equals", "value": "x"}))
    with pytest.raises(ev.EvalError, match="EvalSuite"):
        await ev.run_suite({"cases": []}, respond("x"))  # type: ignore[arg-type]
    with pytest.raises(ev.EvalError, match="target must be"):
        await ev.run_suite(s, "agent")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="concurrency"):
        await ev.run_suite(s, respond("x"), concurrency=0)


async def test_sync_callable_and_agent_reply_targets():
    agent = demo_agent()

    def sync_target(prompt):
        return "Paris is the capital of France."

    async def reply_target(prompt):
        return await agent.ask(prompt)

    s = suite_of(case({"type": "contains_any", "values": ["paris"]}, prompt="What is the capital of France?"))
    assert (await ev.run_suite(s, sync_target, progress=False)).cases[0].passed
    r = (await ev.run_suite(s, reply_target, progress=False)).cases[0]
    assert r.passed and r.total_tokens and r.total_tokens > 0


async def test_listeners_get_one_event_per_case_and_a_failing_listener_is_isolated(caplog):
    seen = []

    def broken(name, payload):
        raise RuntimeError("listener bug")

    s = suite_of(case({"type": "equals", "value": "x"}, tags=["a"]), case({"type": "equals", "value": "y"}, id="c2"))
    run = await ev.run_suite(s, respond("x"), listeners=[broken, lambda n, p: seen.append((n, p))], progress=False)
    assert sorted(seen, key=lambda e: e[1]["case"]) == [
        ("eval.case", {"case": "c1", "passed": True, "tags": ["a"]}),
        ("eval.case", {"case": "c2", "passed": False, "tags": []}),
    ]
    assert run.pass_rate() == 0.5 and "listener" in caplog.text


async def test_progress_bar_writes_to_stderr_when_enabled(capsys):
    s = suite_of(case({"type": "equals", "value": "x"}))
    await ev.run_suite(s, respond("x"), progress=True)
    assert "eval t" in capsys.readouterr().err
    await ev.run_suite(s, respond("x"), progress=False)
    assert capsys.readouterr().err == ""


async def test_run_case_runs_one_case():
    s = ev.load_suite(DATA / "small.yaml")
    r = await ev.run_case("sum", demo_agent(), s)
    assert r.case_id == "sum" and r.passed


# -- chapter 01 targets: role graphs and workflows -----------------------------------------------------


def _desk():
    from agentops.graph import Role, RoleGraph

    roles = [
        Role("router", "You route support requests."),
        Role("billing", "You are billing support.", description="payments and refunds"),
        Role("escalation", "You hand the case to a person."),
    ]
    return RoleGraph(roles, {"router": ["billing", "escalation"], "billing": ["escalation"]}, name="desk")


def _desk_model():
    m = OfflineModel(seed=0)
    m.add_rule(
        rule("router", '{"route": "billing", "reason": "payment", "confidence": 0.9}', system_contains="You route")
    )
    m.add_rule(rule("billing", "Your refund of $20 is on its way.", system_contains="billing support"))
    return m


async def test_suite_runs_against_a_role_graph_with_usage_and_cost():
    suite = suite_from_dict(
        {
            "name": "desk",
            "cases": [
                {
                    "id": "refund",
                    "prompt": "I was charged twice, refund me",
                    "assert": [{"type": "contains_all", "values": ["refund"]}, {"type": "max_tokens", "value": 5000}],
                },
            ],
        }
    )
    model = _desk_model()
    seen: list[str] = []
    run = await ev.run_suite(
        suite,
        role_graph_target(_desk(), model=model, middleware=lambda role: seen.append(role) or []),
        progress=False,
    )
    row = run.frame().iloc[0]
    assert row["passed"] and "refund" in run.cases[0].output
    assert row["tokens"] == int(model.usage.total_tokens)
    assert row["cost_usd"] == pytest.approx(cost(model.usage, "offline-1"))
    assert seen == ["router", "billing", "escalation"]  # the caller's middleware spec still applies


async def test_suite_runs_against_a_workflow_and_failed_runs_are_case_errors():

    template = {
        "name": "answer",
        "stages": [
            {"name": "draft", "instructions": "Draft an answer."},
            {"name": "polish", "depends_on": ["draft"], "instructions": "Polish it."},
        ],
    }
    model = OfflineModel(seed=0, rules=[rule("stage", lambda p: f"{p.system} done")])
    suite = suite_from_dict(
        {
            "name": "wf",
            "cases": [
                {"id": "ok", "prompt": "hello", "assert": [{"type": "contains_all", "values": ["Polish it. done"]}]},
            ],
        }
    )
    run = await ev.run_suite(suite, workflow_target(template, models=model), progress=False)
    row = run.frame().iloc[0]
    assert row["passed"] and row["tokens"] == int(model.usage.total_tokens)
    broken = OfflineModel(seed=0, faults={"empty": 1.0})
    failed = await ev.run_suite(suite, workflow_target(template, models=broken), progress=False)
    assert failed.frame().iloc[0]["status"] == "error"


# -- targets by name: the registry a suite file may use ------------------------------------------------


def test_build_target_by_registered_name_and_its_errors():
    assert isinstance(build_target("demo_agent", variant="regressed"), ag2.Agent)
    with pytest.raises(ev.UnknownKeyError, match=r"unknown target 'nope'; registered targets: \[.*'demo_agent'"):
        build_target("nope")
    with pytest.raises(ev.UnknownKeyError, match="accepted only on the command line, with --agent"):
        build_target("os:system")  # a suite may never name code
    with pytest.raises(ev.EvalError, match=r"failed: invalid offline model option.*colour"):
        build_target("demo_agent", colour="red")
    with pytest.raises(ev.EvalError, match="rejects options"):
        build_target("agentops.evals.demo:calculator", allow_import=True, colour="red")
    with pytest.raises(ev.EvalError, match="failed: unknown demo variant"):
        build_target("demo_agent", variant="worse")


def test_build_target_from_an_import_path_only_when_allowed():
    assert isinstance(build_target("agentops.evals.demo:demo_agent", allow_import=True), ag2.Agent)
    with pytest.raises(ev.EvalError, match="cannot import"):
        build_target("no_such_module_xyz:f", allow_import=True)
    with pytest.raises(ev.EvalError, match="has no attribute"):
        build_target("agentops.evals.demo:nope", allow_import=True)
    with pytest.raises(ev.EvalError, match="not an agent"):
        build_target("agentops.evals.demo:DEMO_PROMPTS", allow_import=True)


def test_register_target_validates_names_and_refuses_silent_replacement():
    async def echo(prompt: str) -> str:
        return prompt

    register_target("echo-registry-test", echo)
    register_target("echo-registry-test", echo)  # the same object again is fine
    assert build_target("echo-registry-test") is echo
    with pytest.raises(ev.EvalError, match="takes no options"):
        build_target("echo-registry-test", variant="x")
    with pytest.raises(ConfigError, match="already registered"):
        register_target("echo-registry-test", lambda: echo)
    register_target("echo-registry-test", lambda: echo, replace=True)
    assert build_target("echo-registry-test") is echo
    for bad in ("os:system", "", "1abc", "a b"):
        with pytest.raises(ConfigError, match="must start with a letter"):
            register_target(bad, echo)
    with pytest.raises(ConfigError, match=r"must be an ag2\.Agent or a callable"):
        register_target("not-callable", 42)


def test_judges_by_registered_name():
    judge_cfg = build_judge("offline_judge", seed=1)
    assert judge_cfg.rules_frame().iloc[0]["rule"] == "rubric judge"
    register_judge("strict-test-judge", lambda: ev.Judge(ev.offline_judge(), thresholds={"overall": 9}), replace=True)
    assert build_judge("strict-test-judge").thresholds == {"overall": 9.0}
    with pytest.raises(ev.UnknownKeyError, match="with --judge"):
        build_judge("evil:judge")
