"""Workflow templates: validation, dependencies, timeouts, retries, approvals, parallel stages, escalation."""

from __future__ import annotations

import asyncio

import matplotlib

matplotlib.use("Agg")
import ag2
import matplotlib.pyplot as plt
import pytest
from ag2.config import LLMClient
from ag2.events import ToolCallEvent
from ag2.middleware import BaseMiddleware, Middleware
from ag2.testing import TestConfig, TrackingConfig

from agentops.config import Spec
from agentops.errors import (
    ConfigError,
    GuardrailBlocked,
    MalformedOutputError,
    ProviderTimeout,
    RefusalError,
    ServerError,
    TimeLimitExceeded,
)
from agentops.escalation import (
    EscalationEngine,
    EscalationRule,
    ScriptedApprover,
    cost_over,
    rate_limit_headroom,
    timed_out,
)
from agentops.models import OfflineModel, rule, tool_rule
from agentops.resilience import AttemptTimeout, IdempotencyLedger
from agentops.testing import SlowModel
from agentops.workflows import (
    Stage,
    StageFailed,
    WorkflowError,
    WorkflowRejected,
    WorkflowTemplate,
    plot_gantt,
    run_workflow,
)
from agentops.workflows.runner import _turn_limit

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
        (_with(stages=[{"name": "a"}, {"name": "a"}]), "stage names must be unique; duplicated: 'a'"),
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
        (_with(stages=[]), "at least one stage; add one under stages"),
        (_with(stages=[{"name": "a", "timeout_s": 0}]), r"stages\.0\.timeout_s: must be > 0 seconds"),
        (_with(default_max_retries=99), "default_max_retries: must be between 0 and 20"),
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


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_parallel_group_really_overlaps():
    # the event loop's clock is simulated: each call takes exactly 0.3 s of loop time, CPU time none
    run = await run_workflow(CODE_REVIEW, "PR", models=echo_model(latency_s=0.3), approver=ScriptedApprover(True))
    spans = {r.stage: (round(r.start_s, 6), round(r.end_s, 6)) for r in run.stages}
    assert spans == {
        "triage": (0.0, 0.3),
        "lint": (0.3, 0.6),
        "tests": (0.3, 0.6),
        "security": (0.3, 0.6),
        "review": (0.6, 0.9),
        "deploy": (0.9, 1.2),
    }
    timing = run.group_timing(["lint", "tests", "security"])
    assert timing.overlapped and timing.wall_s == pytest.approx(0.3) and timing.sum_s == pytest.approx(0.9)
    assert "overlapping: True" in str(timing) and "3 of 3 ran" in str(timing)
    assert list(run.frame(timings=True).columns)[-3:] == ["start_s", "end_s", "duration_s"]


async def test_parallel_group_stages_are_in_flight_together():
    """Event ordering, no clock: every stage of the group starts before any of them finishes."""
    events: list[tuple[str, str]] = []
    gate = asyncio.Event()

    class Recording(SlowModel):  # only its provider, model and copy: the client is this test's
        def create(self) -> LLMClient:
            inner = self.inner

            class _Client(LLMClient):
                async def __call__(self, messages, context, **kw):
                    name = context.prompt[0].split()[0]
                    events.append(("start", name))
                    if name in ("Lint", "Run", "Check"):
                        if sum(e == "start" and n in ("Lint", "Run", "Check") for e, n in events) == 3:
                            gate.set()
                        await asyncio.wait_for(gate.wait(), 30)  # a sequential runner would stall here
                    events.append(("end", name))
                    return await inner.create()(messages, context, **kw)

            return _Client()

    run = await run_workflow(
        CODE_REVIEW, "PR", models=Recording(echo_model(), first=0), approver=ScriptedApprover(True)
    )
    assert run.status == "completed"
    group = [i for i, (_, n) in enumerate(events) if n in ("Lint", "Run", "Check")]
    assert [events[i][0] for i in group] == ["start"] * 3 + ["end"] * 3
    assert events[0] == ("start", "Triage") and events[1] == ("end", "Triage")


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_timeout_then_retry_succeeds():
    flaky = SlowModel(echo_model(), delay_s=1000.0, first=1)
    t = {"name": "t", "stages": [{"name": "only", "timeout_s": 10, "max_retries": 1}]}
    run = await run_workflow(t, "go", models=flaky)
    assert run.status == "completed" and run.record("only").attempts == 2
    assert run.record("only").duration_s == pytest.approx(10.0)  # the first attempt's limit, in loop time


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


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_timeouts_exhaust_retries():
    t = {"name": "t", "stages": [{"name": "slow", "timeout_s": 0.05, "max_retries": 1}]}
    run = await run_workflow(t, "go", models=echo_model(latency_s=1.0))
    assert run.status == "failed" and "TimeLimitExceeded: stage 'slow' exceeded its 0.05 s time limit" in run.reason
    assert run.record("slow").attempts == 2


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_a_stage_whose_server_never_answers_fails_with_a_clear_time_limit_error():
    hanging = SlowModel(echo_model())  # never answers
    t = {"name": "t", "stages": [{"name": "lint", "timeout_s": 0.5, "max_retries": 1}, {"name": "ship"}]}
    run = await run_workflow(t, "go", models=hanging)
    rec = run.record("lint")
    assert run.status == "failed" and rec.attempts == hanging.calls == 2 and run.record("ship").status == "skipped"
    assert rec.error.startswith(
        "TimeLimitExceeded: stage 'lint' exceeded its 0.5 s time limit on attempt 2 of 2: the model server answered"
        " too slowly"
    )
    assert "raise the stage's timeout_s (or the template's default_timeout_s" in rec.error
    with pytest.raises(StageFailed, match=r"exceeded its 0\.5 s time limit") as caught:
        run.raise_for_status()
    cause = caught.value.__cause__
    assert isinstance(cause, TimeLimitExceeded) and (cause.where, cause.limit_s) == ("stage 'lint'", 0.5)
    assert isinstance(cause.__cause__, AttemptTimeout)  # the last attempt's own timeout, kept as the cause
    assert run.reason == f"stage 'lint' failed after 2 attempt(s): {rec.error}"  # one fix, not two
    assert "CancelledError" not in run.reason + rec.error


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_a_turn_stuck_outside_the_model_call_hits_the_whole_turn_limit():
    async def wait_forever(ticket: str) -> str:
        """Wait for a ticket system that never answers."""
        await asyncio.Event().wait()
        return ticket

    model = OfflineModel(seed=0)
    model.add_rule(tool_rule("wait_forever", keywords=["ticket"], arguments={"ticket": "T-1"}))
    t = {"name": "t", "stages": [{"name": "file", "timeout_s": 2, "max_retries": 0}]}
    run = await run_workflow(t, "open a ticket", models=model, tools={"file": [ag2.tool(wait_forever)]})
    rec = run.record("file")
    assert run.status == "failed" and rec.attempts == 1
    limit = _turn_limit(2, 0, 0.0)  # one attempt at its limit, no waits, plus 1 s
    assert rec.error.startswith(
        f"TimeLimitExceeded: stage 'file' exceeded its {limit:g} s time limit for the whole turn (every attempt"
    )
    assert rec.duration_s == pytest.approx(limit) and "CancelledError" not in run.reason


async def test_a_provider_timeout_is_not_the_stage_time_limit():
    t = {"name": "t", "stages": [{"name": "s", "max_retries": 2}]}
    run = await run_workflow(t, "go", models=OfflineModel(seed=0, faults={"timeout": 1.0}))
    rec = run.record("s")
    assert rec.attempts == 3 and rec.error.startswith("ProviderTimeout: ")  # retried: is_retryable
    assert "exceeded" not in rec.error


@pytest.mark.parametrize(
    ("error", "attempts"),
    [(GuardrailBlocked, 1), (ConfigError, 1), (MalformedOutputError, 3), (ServerError, 3), (RuntimeError, 1)],
)
async def test_retries_follow_is_retryable(error, attempts):
    model = TrackingConfig(TestConfig(*[error("nope")] * 3, "too late", model="offline-1"))
    t = {"name": "t", "stages": [{"name": "s", "max_retries": 2}]}
    run = await run_workflow(t, "go", models=model)
    assert run.status == "failed" and run.record("s").attempts == attempts == len(model.calls)
    assert run.record("s").error == f"{error.__name__}: nope"


async def test_extra_middleware_sits_outside_the_call_level_retries():
    class Raise(BaseMiddleware):
        async def on_llm_call(self, call_next, events, context):
            raise ServerError("from outside")

    t = {"name": "t", "stages": [{"name": "s", "max_retries": 2}]}
    run = await run_workflow(t, "go", models=echo_model(), middleware=[Middleware(Raise)])
    assert run.status == "failed" and run.record("s").attempts == 1  # nothing inside the policy failed


class _TurnCounter(BaseMiddleware):
    turns = 0

    async def on_turn(self, call_next, event, context):
        type(self).turns += 1
        return await call_next(event, context)


def _ticket_tool(opened: list[str], *middleware):
    async def open_ticket(order_id: str) -> str:
        """Open a support ticket for an order (a side effect)."""
        opened.append(order_id)
        return f"ticket T-{len(opened)} for order {order_id}"

    return ag2.tool(open_ticket, middleware=list(middleware))


def _ticket_script(*failures):
    call = ToolCallEvent("open_ticket", id="c1", arguments='{"order_id": "17"}')
    return TrackingConfig(TestConfig(call, *failures, "Ticket opened for order 17.", model="offline-1"))


async def test_a_failing_model_call_is_retried_inside_one_turn_and_the_tool_runs_once():
    opened, events = [], []
    model = _ticket_script(ServerError("503 (scripted)"), ProviderTimeout("timed out (scripted)"))
    _TurnCounter.turns = 0
    t = {"name": "t", "stages": [{"name": "support", "max_retries": 2}]}
    run = await run_workflow(
        t,
        "Open a ticket for order 17",
        models=model,
        tools={"support": [_ticket_tool(opened)]},
        middleware=[Middleware(_TurnCounter)],
        listeners=[lambda e, p: events.append((e, p))],
        run_id="run-1",
    )
    rec = run.record("support")
    assert run.status == "completed" and rec.output == "Ticket opened for order 17."
    assert _TurnCounter.turns == 1  # one turn: the turn was never repeated
    assert rec.attempts == 3  # the call after the tool: two failures, then success
    assert len(model.calls) == 4 and model.calls[1].prompt == model.calls[3].prompt  # same call, 3 attempts
    assert opened == ["17"]  # the tool's side effect happened once
    retries = [p for e, p in events if e == "resilience.retry"]
    assert [(p["attempt"], p["error"]) for p in retries] == [(1, "ServerError"), (2, "ProviderTimeout")]
    assert {c.variables["idempotency_key"] for c in model.calls} == {"run-1:support"}
    stage_events = [p for e, p in events if e == "stage"]
    assert stage_events[-1]["attempts"] == 3 and stage_events[-1]["status"] == "completed"


async def test_an_escalation_rerun_does_not_repeat_a_guarded_side_effect():
    opened, ledger = [], IdempotencyLedger()
    tool = _ticket_tool(opened, ledger.once())
    engine = EscalationEngine([EscalationRule("again", lambda c: c.attempt == 0, "low", "retry", max_retries=1)])
    t = {"name": "t", "stages": [{"name": "support"}]}
    run = await run_workflow(
        t, "Open a ticket", models=_ticket_script(), tools={"support": [tool]}, escalation=engine, run_id="r"
    )
    assert run.status == "completed" and run.record("support").attempts == 2  # two turns
    assert opened == ["17"] and (ledger.executed, ledger.replayed) == (1, 1)


async def test_a_stage_answer_cut_at_the_token_limit_is_kept_not_retried():
    from ag2.events import ModelMessage, ModelResponse

    cut = ModelResponse(ModelMessage("The change looks fine but"), finish_reason="length")
    model = TrackingConfig(TestConfig(cut, "unused", model="offline-1"))
    run = await run_workflow({"name": "t", "stages": [{"name": "s"}]}, "go", models=model)
    assert run.status == "completed" and run.outputs["s"] == "The change looks fine but"
    assert run.record("s").attempts == 1 and len(model.calls) == 1


async def test_tools_for_an_unknown_stage_are_refused():
    t = {"name": "t", "stages": [{"name": "s"}]}
    with pytest.raises(WorkflowError, match=r"tools for unknown stage\(s\) \['nope'\]"):
        await run_workflow(t, "go", models=echo_model(), tools={"nope": []})
    with pytest.raises(WorkflowError, match="tools must map stage names"):
        await run_workflow(t, "go", models=echo_model(), tools=["x"])


async def test_unpriced_model_keeps_tokens_and_reports_cost_as_unpriced(monkeypatch):
    from agentops import usage

    monkeypatch.setattr(usage, "_warned", set())
    t = {"name": "t", "stages": [{"name": "a"}, {"name": "b", "depends_on": ["a"]}]}
    model = OfflineModel("local-gguf-test", seed=0)
    with pytest.warns(usage.UnpricedModelWarning):
        run = await run_workflow(t, "go", models=model)
    assert run.status == "completed" and run.tokens == int(model.usage.total_tokens) > 0
    assert run.cost_usd is None and run.unpriced_calls == 2
    assert run.record("a").cost_usd is None and run.frame()["cost_usd"].isna().all()


async def test_empty_output_is_retried_then_fails():
    t = {"name": "t", "stages": [{"name": "s", "max_retries": 1}]}
    run = await run_workflow(t, "go", models=OfflineModel(seed=0, faults={"empty": 1.0}))
    assert run.status == "failed" and "EmptyOutputError" in run.reason and "no text" in run.reason
    assert run.record("s").attempts == 2


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
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


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_escalation_retry_reruns_a_timed_out_stage():
    flaky = SlowModel(echo_model(), delay_s=1000.0, first=1)
    t = {"name": "t", "stages": [{"name": "s", "timeout_s": 5, "max_retries": 0}]}
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
    engine = EscalationEngine([EscalationRule("kill", lambda c: c.where == "stage:triage", "critical", "abort")])
    run = await run_workflow(CODE_REVIEW, "PR", models=echo_model(), approver=ScriptedApprover(True), escalation=engine)
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


def test_specs_built_directly_raise_config_error_naming_field_and_fix():
    assert issubclass(Stage, Spec) and issubclass(WorkflowTemplate, Spec)
    with pytest.raises(ConfigError, match=r"invalid Stage: timeout_s: must be > 0 seconds .* leave it unset"):
        Stage(name="a", timeout_s=0)
    with pytest.raises(ConfigError, match=r"invalid WorkflowTemplate: stages: a workflow needs at least one stage"):
        WorkflowTemplate(name="t", stages=[])
    with pytest.raises(ConfigError, match="stage names must be unique"):
        WorkflowTemplate(name="t", stages=[Stage(name="a"), Stage(name="a")])


def test_replace_returns_a_validated_copy_for_slow_models():
    t = WorkflowTemplate.from_dict(CODE_REVIEW)
    slow = t.replace(default_timeout_s=300)
    assert slow.timeout_for(slow.stage_map["lint"]) == 300 and t.default_timeout_s == 60
    with pytest.raises(WorkflowError, match="default_timeout_s: must be > 0"):
        t.replace(default_timeout_s=0)


async def test_rejection_is_a_refusal_and_skipped_stages_have_no_timing():
    run = await run_workflow(CODE_REVIEW, "PR", models=echo_model(), approver=ScriptedApprover(False))
    with pytest.raises(RefusalError):
        run.raise_for_status()
    assert run.record("deploy").duration_s is None
    timing = run.group_timing(["review", "deploy"])
    assert timing.durations["deploy"] is None and timing.overlapped is False
    assert timing.wall_s == pytest.approx(run.record("review").duration_s)
    stopped = await run_workflow(
        CODE_REVIEW,
        "PR",
        models=echo_model(),
        approver=ScriptedApprover(False),
        escalation=EscalationEngine([cost_over(0.0)]),
    )
    group = stopped.group_timing(["lint", "tests", "security"])
    assert group.wall_s is None and str(group) == "no stage of the group ran"
    assert stopped.frame(timings=True)["duration_s"].iloc[1:].isna().all()
