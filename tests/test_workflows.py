"""Workflow templates: validation, dependencies, timeouts, retries, approvals, parallel stages, escalation."""

from __future__ import annotations

import asyncio

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from ag2.config import LLMClient, ModelConfig

from agentops.escalation import (
    EscalationEngine,
    EscalationRule,
    ScriptedApprover,
    cost_over,
    rate_limit_headroom,
    timed_out,
)
from agentops.models import OfflineModel, rule
from agentops.workflows import (
    StageFailed,
    WorkflowError,
    WorkflowRejected,
    WorkflowTemplate,
    plot_gantt,
    run_workflow,
)

CODE_REVIEW = {
    "name": "code_review",
    "parameters": {"language": "python"},
    "stages": [
        {"name": "triage", "instructions": "Triage a {language} change."},
        {"name": "lint", "depends_on": ["triage"], "instructions": "Lint the {language} code."},
        {"name": "tests", "depends_on": ["triage"], "instructions": "Run the tests."},
        {"name": "security", "depends_on": ["triage"], "instructions": "Check security."},
        {"name": "review", "depends_on": ["lint", "tests", "security"], "instructions": "Review."},
        {"name": "deploy", "depends_on": ["review"], "approval": True, "instructions": "Deploy."},
    ],
    "parallel_groups": [["lint", "tests", "security"]],
}


def echo_model(**kw):
    """Answers with its system prompt and what it was given, so tests can see the inputs."""
    m = OfflineModel(seed=0, **kw)
    m.add_rule(rule("echo", lambda p: f"SYSTEM<{p.system}> INPUT<{p.user}>"))
    return m


class SlowFirst(ModelConfig):
    """Test double: the first ``slow`` calls sleep ``delay`` seconds before answering."""

    def __init__(self, inner: OfflineModel, slow: int, delay: float) -> None:
        self.inner, self.slow, self.delay = inner, slow, delay

    @property
    def provider(self):
        return self.inner.provider

    @property
    def model(self):
        return self.inner.model

    def copy(self, **kw):
        return self

    def create(self) -> LLMClient:
        outer = self

        class _Client(LLMClient):
            async def __call__(self, messages, context, **kw):
                if outer.slow > 0:
                    outer.slow -= 1
                    await asyncio.sleep(outer.delay)
                return await outer.inner.create()(messages, context, **kw)

        return _Client()


# -- templates ----------------------------------------------------------------------------------------


def test_template_round_trip_and_frame():
    t = WorkflowTemplate.from_dict(CODE_REVIEW)
    assert [s.name for s in t.stages] == ["triage", "lint", "tests", "security", "review", "deploy"]
    assert t.group_of("tests") == 0 and t.group_of("review") is None
    assert t.ancestors("deploy") == {"triage", "lint", "tests", "security", "review"}
    assert t.placeholders() == {"language"}
    frame = t.frame()
    assert frame.loc["deploy", "approval"] == "yes" and frame.loc["lint", "parallel group"] == 0
    yaml_text = "name: tiny\nstages:\n  - {name: a}\n  - {name: b, depends_on: [a], timeout_s: 5}\n"
    tiny = WorkflowTemplate.from_yaml(yaml_text)
    assert tiny.timeout_for(tiny.stage_map["b"]) == 5 and tiny.retries_for(tiny.stage_map["a"]) == 1


def _with(**changes):
    return {**CODE_REVIEW, **changes}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_with(stages=[{"name": "a"}, {"name": "a"}]), "duplicate stage"),
        (_with(stages=[{"name": "a", "depends_on": ["zz"]}], parallel_groups=[]), "unknown stage 'zz'"),
        (_with(stages=[{"name": "a", "depends_on": ["a"]}], parallel_groups=[]), "depends on itself"),
        (
            _with(
                stages=[{"name": "a", "depends_on": ["b"]}, {"name": "b", "depends_on": ["a"]}],
                parallel_groups=[],
            ),
            "cycle",
        ),
        (_with(parallel_groups=[["lint", "review"]]), "cannot run in parallel"),
        (_with(parallel_groups=[["lint", "ghost"]]), "unknown stage 'ghost'"),
        (_with(parallel_groups=[["lint", "tests"], ["tests", "security"]]), "two parallel groups"),
        (_with(parallel_groups=[["lint"]]), "at least two"),
        (_with(stages=[]), "at least 1"),
        (_with(stages=[{"name": "a", "timeout_s": 0}]), "timeout_s"),
        (_with(stages=[{"name": "a", "bogus": 1}]), "bogus"),
        (_with(name="bad name!"), "name"),
    ],
)
def test_template_validation(data, match):
    with pytest.raises(WorkflowError, match=match):
        WorkflowTemplate.from_dict(data)


def test_yaml_errors():
    with pytest.raises(WorkflowError, match="not valid YAML"):
        WorkflowTemplate.from_yaml("name: [unclosed")
    with pytest.raises(WorkflowError, match="mapping"):
        WorkflowTemplate.from_yaml("- just\n- a list\n")


async def test_run_argument_errors():
    t = WorkflowTemplate.from_dict(CODE_REVIEW)
    with pytest.raises(WorkflowError, match="need approval"):
        await run_workflow(t, "PR", models=echo_model())
    with pytest.raises(WorkflowError, match=r"parameter\(s\) \['team'\]"):
        bad = _with(stages=[{"name": "a", "instructions": "for {team}"}], parallel_groups=[])
        await run_workflow(bad, "PR", models=echo_model())
    with pytest.raises(WorkflowError, match="no model for stage 'triage'"):
        await run_workflow(t, "PR", models={"review": echo_model()}, approver=ScriptedApprover(True))
    with pytest.raises(WorkflowError, match="non-empty"):
        await run_workflow(t, " ", models=echo_model(), approver=ScriptedApprover(True))
    with pytest.raises(WorkflowError, match="WorkflowTemplate"):
        await run_workflow(42, "PR", models=echo_model())


# -- running ------------------------------------------------------------------------------------------


async def test_stages_receive_request_and_dependency_outputs_and_params():
    run = await run_workflow(
        CODE_REVIEW,
        "Review PR 42",
        models=echo_model(),
        params={"language": "go"},
        approver=ScriptedApprover(True),
    )
    assert run.status == "completed" and run.reason == ""
    assert "SYSTEM<Triage a go change.>" in run.outputs["triage"]
    assert "Request: Review PR 42" in run.outputs["lint"]
    assert "## Output of triage" in run.outputs["lint"]
    review = run.outputs["review"]
    assert all(f"## Output of {d}" in review for d in ("lint", "tests", "security"))
    frame = run.frame()
    assert list(frame["status"]) == ["completed"] * 6
    assert frame.loc["deploy", "approval"] == "approved"
    assert run.tokens == frame["tokens"].sum() > 0
    assert run.cost_usd == pytest.approx(sum(r.cost_usd for r in run.stages))


async def test_same_template_different_models_per_stage():
    cheap, large = echo_model(), OfflineModel("offline-large", seed=0)
    run = await run_workflow(
        CODE_REVIEW, "PR", models={"default": cheap, "review": large}, approver=ScriptedApprover(True)
    )
    assert run.record("review").model == "offline-large" and run.record("lint").model == "offline-1"
    with pytest.raises(WorkflowError, match="no stage named"):
        run.record("nope")


async def test_parallel_group_really_overlaps():
    run = await run_workflow(
        CODE_REVIEW, "PR", models=echo_model(latency_s=0.15), approver=ScriptedApprover(True)
    )
    group = [run.record(n) for n in ("lint", "tests", "security")]
    assert max(r.start_s for r in group) < min(r.end_s for r in group)  # all three were running at once
    triage, review = run.record("triage"), run.record("review")
    assert triage.end_s <= min(r.start_s for r in group)
    assert review.start_s >= max(r.end_s for r in group)
    assert list(run.frame(timings=True).columns)[-3:] == ["start_s", "end_s", "duration_s"]


async def test_timeout_then_retry_succeeds():
    flaky = SlowFirst(echo_model(), slow=1, delay=1.0)
    t = {"name": "t", "stages": [{"name": "only", "timeout_s": 0.1, "max_retries": 1}]}
    run = await run_workflow(t, "go", models=flaky)
    assert run.status == "completed" and run.record("only").attempts == 2


async def test_stage_that_keeps_failing_fails_the_workflow():
    broken = OfflineModel(seed=0, faults={"server_error": 1.0})
    t = {
        "name": "t",
        "default_max_retries": 2,
        "stages": [{"name": "build"}, {"name": "ship", "depends_on": ["build"]}],
    }
    run = await run_workflow(t, "go", models=broken)
    assert run.status == "failed"
    assert run.record("build").attempts == 3 and run.record("build").status == "failed"
    assert run.record("ship").status == "skipped" and run.record("ship").attempts == 0
    assert "stage 'build' failed after 3 attempt(s): ServerError" in run.reason
    with pytest.raises(StageFailed, match="stage 'build'"):
        run.raise_for_status()


async def test_timeouts_exhaust_retries():
    t = {"name": "t", "stages": [{"name": "slow", "timeout_s": 0.05, "max_retries": 1}]}
    run = await run_workflow(t, "go", models=echo_model(latency_s=1.0))
    assert run.status == "failed" and "TimeoutError: attempt 2 exceeded 0.05 s" in run.reason


async def test_empty_output_is_retried_then_fails():
    t = {"name": "t", "stages": [{"name": "s", "max_retries": 1}]}
    run = await run_workflow(t, "go", models=OfflineModel(seed=0, faults={"empty": 1.0}))
    assert run.status == "failed" and "no text" in run.reason and run.record("s").attempts == 2


@pytest.mark.parametrize(
    ("answer", "timeout", "approval"),
    [(False, 1.0, "rejected"), ("no", 1.0, "rejected"), (None, 0.05, "timed out")],
)
async def test_approval_gate_blocks_the_stage(answer, timeout, approval):
    model = echo_model()
    template = _with(approval_timeout_s=timeout)
    approver = ScriptedApprover(answer)
    run = await run_workflow(template, "PR", models=model, approver=approver)
    assert run.status == "rejected"
    deploy = run.record("deploy")
    assert deploy.status == "rejected" and deploy.approval == approval
    assert deploy.attempts == 0 and deploy.tokens == 0 and "deploy" not in run.outputs
    assert model.calls == 5  # every stage but deploy called the model once
    assert approver.asked[0].subject == "code_review/deploy"
    assert approver.asked[0].details["params"] == {"language": "python"}
    with pytest.raises(WorkflowRejected, match="not approved"):
        run.raise_for_status()


async def test_cost_threshold_asks_before_continuing():
    approver = ScriptedApprover(False)
    engine = EscalationEngine([cost_over(0.0)])
    run = await run_workflow(CODE_REVIEW, "PR", models=echo_model(), approver=approver, escalation=engine)
    assert run.status == "stopped"
    assert "escalation after stage 'triage'" in run.reason
    assert [r.status for r in run.stages] == ["completed"] + ["skipped"] * 5
    assert list(run.escalations["rule"]) == ["cost_over"]
    assert list(run.escalations["outcome"]) == ["rejected"]
    approver = ScriptedApprover(True, True)
    run = await run_workflow(CODE_REVIEW, "PR", models=echo_model(), approver=approver, escalation=engine)
    assert run.status == "completed" and [r.kind for r in approver.asked] == ["escalation", "stage"]


async def test_escalation_retry_reruns_a_timed_out_stage():
    flaky = SlowFirst(echo_model(), slow=1, delay=1.0)
    t = {"name": "t", "stages": [{"name": "s", "timeout_s": 0.05, "max_retries": 0}]}
    engine = EscalationEngine([timed_out(max_retries=1)])
    run = await run_workflow(t, "go", models=flaky, escalation=engine)
    assert run.status == "completed" and run.record("s").attempts == 2
    assert list(run.escalations["outcome"]) == ["retry 1/1"]


async def test_escalation_fallback_switches_the_stage_model():
    fallback = OfflineModel("offline-mini", seed=0)
    engine = EscalationEngine([rate_limit_headroom(0.5, fallback_model=fallback)])
    t = {"name": "t", "stages": [{"name": "s"}]}
    run = await run_workflow(t, "go", models=echo_model(), escalation=engine, rate_limit=lambda: (1, 10))
    assert run.record("s").model == "offline-mini" and fallback.calls == 1
    assert list(run.escalations["outcome"]) == [
        "fallback to offline-mini",
        "already on fallback offline-mini",
    ]
    assert run.status == "aborted"


async def test_escalation_abort():
    engine = EscalationEngine(
        [EscalationRule("kill", lambda c: c.where == "stage:triage", "critical", "abort")]
    )
    run = await run_workflow(
        CODE_REVIEW, "PR", models=echo_model(), approver=ScriptedApprover(True), escalation=engine
    )
    assert run.status == "aborted" and run.record("lint").status == "skipped"
    with pytest.raises(WorkflowRejected, match="aborted"):
        run.raise_for_status()


async def test_listeners_and_gantt():
    events = []
    run = await run_workflow(
        CODE_REVIEW,
        "PR",
        models=echo_model(),
        approver=ScriptedApprover(True),
        listeners=[lambda e, p: events.append((e, p.get("stage"), p.get("status")))],
    )
    assert ("approval", "deploy", "approved") in events
    assert next(s for e, s, _ in events if e == "stage") == "triage"
    ax = plot_gantt(run)
    assert ax.get_xlabel() == "seconds since the workflow started"
    assert len(ax.patches) == 6
    plt.close("all")


async def test_run_ids_are_counted_per_process():
    t = {"name": "counter", "stages": [{"name": "s"}]}
    a = await run_workflow(t, "x", models=echo_model())
    b = await run_workflow(t, "x", models=echo_model(), run_id="mine")
    assert a.run_id.startswith("counter-") and b.run_id == "mine"


async def test_extra_middleware_wraps_every_stage_and_telemetry_sees_them():
    from agentops.telemetry import Telemetry

    telemetry = Telemetry(exporter="memory")
    run = await run_workflow(
        CODE_REVIEW, "PR", models=echo_model(), approver=ScriptedApprover(True), middleware=telemetry.middleware
    )
    telemetry.flush()
    turns = telemetry.store.turns()
    assert sorted(turns["agent"]) == sorted(r.stage for r in run.stages)
    assert turns["cost_usd"].sum() == pytest.approx(run.cost_usd)
    telemetry.shutdown()
