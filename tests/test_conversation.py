"""State machine (every edge and refusal, slots, persistence) and the planner (criteria, fallbacks, replans)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging

import ag2
import pytest
from ag2.testing import TrackingConfig
from pydantic import BaseModel

from agentops.conversation import (
    Conversation,
    ConversationSpec,
    Plan,
    PlanStep,
    StateSpec,
    TransitionRefused,
    propose_plan,
    run_plan,
)
from agentops.errors import ConfigError, RefusalError
from agentops.listeners import HANDOFF_REFUSED
from agentops.models import OfflineModel, rule
from agentops.scenarios import load_scenario
from agentops.scenarios.advanced import RELEASE_PLAN, booking_spec

SPEC = booking_spec()
STATES = [s.name for s in SPEC.states]
FULL = {"party_size": 4, "date": "2026-12-24", "name": "Ada"}


def model() -> OfflineModel:
    m = OfflineModel()
    load_scenario("advanced", m)
    return m


def conv(state: str = "greeting", slots: dict | None = None, **kw) -> Conversation:
    return Conversation(SPEC, model(), state=state, slots=dict(slots or {}), **kw)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(STATES, STATES)))
def test_every_edge_is_allowed_or_refused(source, target):
    c = conv(source, FULL)
    if (source, target) in SPEC.transitions:
        c.go_to(target)
        assert c.state == target and c.log[-1]["event"] == "transition"
    else:
        with pytest.raises(TransitionRefused, match="not allowed"):
            c.go_to(target)
        assert c.state == source and c.log[-1]["event"] == "refused"


def test_entering_a_state_needs_its_required_slots():
    c = conv("collecting", {"party_size": 2})
    with pytest.raises(TransitionRefused, match=r"fill \['date', 'name'\] first"):
        c.go_to("confirming")
    assert c.state == "collecting"


def test_unknown_state_and_refusals_are_logged_and_sent_to_listeners(caplog):
    seen = []
    c = conv(listeners=[lambda kind, payload: seen.append((kind, payload))])
    with caplog.at_level(logging.INFO, logger="agentops.conversation"), pytest.raises(RefusalError):
        c.go_to("nowhere")
    assert seen == [(HANDOFF_REFUSED, {"from": "greeting", "to": "nowhere", "reason": seen[0][1]["reason"]})]
    assert "unknown state" in seen[0][1]["reason"] and "refused transition greeting -> nowhere" in caplog.text


def test_slots_are_validated():
    c = conv("collecting")
    assert c.fill("party_size", "4") == 4 and c.fill("date", "2026-12-24") == dt.date(2026, 12, 24)
    with pytest.raises(TransitionRefused, match="less than or equal to 12"):
        c.fill("party_size", "20")
    with pytest.raises(TransitionRefused, match="unknown slot"):
        c.fill("table", "7")
    assert c.slots["party_size"] == 4


async def test_transcript_walks_the_machine_with_refusals():
    c = conv()
    replies = [
        await c.say(t)
        for t in [
            "Hi, I'd like to book a table",
            "Just book it",
            "We are 20 people on 2026-12-24 under Ada",
            "Make it 4 people",
            "Please confirm",
            "Yes, book it",
        ]
    ]
    assert c.state == "booked" and c.slots == {"party_size": 4, "date": dt.date(2026, 12, 24), "name": "Ada"}
    assert "REFUSED: transition collecting -> booked refused" in replies[1]
    assert "OK: date=2026-12-24, name=Ada; REFUSED: slot" in replies[2]
    assert list(c.log_frame()["event"]) == [
        "transition",
        "refused",
        "slot",
        "slot",
        "refused",
        "slot",
        "transition",
        "transition",
    ]
    with pytest.raises(TransitionRefused, match="terminal"):
        await c.say("one more thing")


async def test_state_reaches_the_agent_through_ag2_variables_not_the_system_message():
    tracking = TrackingConfig(OfflineModel(rules=[rule("any", "ok")]))
    c = Conversation(SPEC, tracking, prompt="BASE")
    await c.say("hello")
    c.go_to("collecting")
    await c.say("hello again")
    prompts = [call.prompt for call in tracking.calls]
    assert prompts[0][0] == "BASE" and prompts[0][1].startswith("STATE: greeting")
    assert prompts[1][0] == "BASE" and prompts[1][1].startswith("STATE: collecting")
    assert tracking.calls[1].variables["conversation_state"] == "collecting"


def test_persistence_round_trip():
    c = conv("collecting", {"party_size": 3, "date": "2027-01-02"})
    c.transcript.append(("user", "hi"))
    with pytest.raises(TransitionRefused):
        c.go_to("booked")
    restored = Conversation.restore(SPEC, model(), c.to_json())
    assert (restored.state, restored.slots, restored.log, restored.transcript) == (
        c.state,
        c.slots,
        c.log,
        c.transcript,
    )
    assert json.loads(restored.to_json()) == json.loads(c.to_json())


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"spec": "other"}, "for spec 'other'"),
        ({"state": "lost"}, "not a state"),
        ({"slots": {"party_size": 99}}, "saved slots"),
    ],
)
def test_restore_refuses_bad_saves(patch, match):
    data = {**json.loads(conv().to_json()), **patch}
    with pytest.raises(ConfigError, match=match):
        Conversation.restore(SPEC, model(), json.dumps(data))
    with pytest.raises(ConfigError, match="not JSON"):
        Conversation.restore(SPEC, model(), "{oops")


def test_spec_validation():
    class Slots(BaseModel):
        a: int | None = None

    good = {
        "name": "x",
        "states": [StateSpec(name="s", instructions="i")],
        "transitions": [],
        "initial": "s",
        "slots": Slots,
    }
    assert ConversationSpec(**good).diagram() == "stateDiagram-v2\n    [*] --> s"
    for bad, match in [
        ({"initial": "t"}, "initial state"),
        ({"transitions": [("s", "t")]}, "unknown states"),
        ({"states": [StateSpec(name="s", instructions="i")] * 2}, "unique"),
        ({"states": [StateSpec(name="s", instructions="i", requires=("zz",))]}, "unknown slots"),
    ]:
        with pytest.raises(ConfigError, match=match):
            ConversationSpec(**{**good, **bad})
    with pytest.raises(ConfigError, match="ConversationSpec"):
        Conversation({"name": "x"}, model())


# -- planner ---------------------------------------------------------------------------------------------


def worker(m: OfflineModel | None = None) -> ag2.Agent:
    return ag2.Agent("worker", "You carry out one plan step.", config=m or model())


async def test_plan_failing_step_recovered_by_its_fallback():
    run = await run_plan(Plan.model_validate(RELEASE_PLAN), worker())
    assert run.status == "succeeded" and run.replans == 0
    frame = run.frame()
    assert list(zip(frame["step"], frame["variant"], frame["passed"], strict=True)) == [
        ("draft", "primary", True),
        ("translate", "primary", False),
        ("translate", "primary", False),
        ("translate", "fallback", True),
        ("announce", "primary", True),
    ]
    assert frame.loc[1, "criteria"] == "contains_any[Notes de version] ✗"
    assert run.outputs["translate"].startswith("Notes de version")


async def test_plan_without_fallback_fails_then_replans_within_bound():
    steps = [
        PlanStep(
            name="translate",
            goal="Translate the notes to French",
            success=[{"type": "contains_any", "values": ["Notes de version"]}],
            max_attempts=1,
        )
    ]
    plan = Plan(goal="Publish the notes", steps=steps)
    failed = await run_plan(plan, worker())
    assert failed.status == "failed at translate" and len(failed.attempts) == 1
    planner = ag2.Agent("planner", "You write plans as JSON.", config=model())
    replanned = await run_plan(plan, worker(), planner=planner, max_replans=1)
    assert replanned.replans == 1 and replanned.status == "succeeded"
    assert replanned.attempts[0]["step"] == "translate"
    bounded = await run_plan(plan, worker(), planner=planner, max_replans=0)
    assert bounded.status == "failed at translate" and bounded.replans == 0


async def test_judge_criterion_sync_and_async():
    step = PlanStep(name="announce", goal="Write a one-line announcement", criterion="mentions availability")
    plan = Plan(goal="g", steps=[step])
    with pytest.raises(ConfigError, match="no judge"):
        await run_plan(plan, worker())
    run = await run_plan(plan, worker(), judge=lambda criterion, text: "available" in text)
    assert run.status == "succeeded" and run.attempts[0]["criteria"] == "judge[mentions availability] ✓"

    async def strict(criterion, text):
        return False

    run = await run_plan(plan, worker(), judge=strict)
    assert run.status == "failed at announce" and len(run.attempts) == 2


async def test_proposed_plan_is_validated_before_running():
    planner = ag2.Agent("planner", "You write plans as JSON.", config=model())
    plan = await propose_plan(planner, "Publish the release notes")
    assert [s.name for s in plan.steps] == ["draft", "translate", "announce"]
    m = model()
    bad_planner = ag2.Agent("planner", "You write plans as JSON.", config=m)
    with pytest.raises(ConfigError, match="no success criteria"):
        await propose_plan(bad_planner, "broken plan")


def test_plan_validation():
    with pytest.raises(ConfigError, match="no success criteria"):
        PlanStep(name="a", goal="x")
    with pytest.raises(ConfigError, match=r"unknown assertion|type"):
        PlanStep(name="a", goal="x", success=[{"type": "contains_sometimes", "values": ["a"]}])
    s = PlanStep(name="a", goal="x", criterion="c")
    with pytest.raises(ConfigError, match="unique"):
        Plan(goal="g", steps=[s, s])
    with pytest.raises(ConfigError, match="max_attempts"):
        PlanStep(name="a", goal="x", criterion="c", max_attempts=9)


async def test_run_plan_refuses_unvalidated_plans():
    with pytest.raises(ConfigError, match="propose_plan"):
        await run_plan(RELEASE_PLAN, worker())


async def test_judge_criterion_through_the_evals_judge():
    from agentops.evals import Judge, offline_judge

    judge = Judge(offline_judge(), thresholds={"overall": 6})
    step = PlanStep(name="announce", goal="Write a one-line announcement", criterion="version 2.1 is available")
    run = await run_plan(Plan(goal="g", steps=[step]), worker(), judge=judge)
    assert run.status == "succeeded" and run.attempts[0]["criteria"] == "judge[version 2.1 is available] ✓"
    off_topic = PlanStep(name="announce", goal="Write a one-line announcement", criterion="refund policy for shoes")
    run = await run_plan(Plan(goal="g", steps=[off_topic]), worker(), judge=judge)
    assert run.status == "failed at announce" and run.attempts[0]["criteria"].endswith("✗")


async def test_an_invalid_replan_ends_the_run_instead_of_raising():
    step = PlanStep(
        name="translate",
        goal="Translate the notes to French",
        success=[{"type": "contains_any", "values": ["never produced"]}],
    )
    planner = ag2.Agent("planner", "You write plans as JSON.", config=OfflineModel(rules=[rule("p", "no plan here")]))
    run = await run_plan(Plan(goal="broken", steps=[step]), worker(), planner=planner, max_replans=1)
    assert run.status.startswith("failed at translate; replan rejected") and run.replans == 1
