"""Escalation rules, handlers, ordering, approvals and the log."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentops.errors import ConfigError
from agentops.escalation import (
    Action,
    ApprovalRequest,
    EscalationEngine,
    EscalationRule,
    EscalationRuleError,
    Handler,
    RunContext,
    ScriptedApprover,
    cost_over,
    default_rules,
    default_sensitive_detector,
    error_rate_over,
    low_confidence,
    rate_limit_headroom,
    request_approval,
    sensitive_data,
    timed_out,
)
from agentops.models import OfflineModel

FALLBACK = OfflineModel("offline-mini")


def ctx(**kw):
    return RunContext(run_id=kw.pop("run_id", "r1"), where=kw.pop("where", "step"), **kw)


# -- rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "non-empty"),
        ({"handler": "explode"}, "unknown handler 'explode'"),
        ({"severity": "urgent"}, "severity 'urgent'"),
        ({"handler": "fallback"}, "fallback_model"),
        ({"max_retries": -1}, "max_retries"),
        ({"condition": "not callable"}, "callable"),
    ],
)
def test_rule_validation(kwargs, match):
    base = {"name": "r", "condition": lambda c: True, "severity": "low", "handler": "abort"}
    with pytest.raises(ConfigError, match=match):
        EscalationRule(**{**base, **kwargs})


def test_rule_handler_string_is_normalised():
    r = EscalationRule("r", lambda c: True, "low", "retry")
    assert r.handler is Handler.RETRY


def test_factories_fire_only_on_their_condition():
    assert low_confidence(0.6).condition(ctx(confidence=0.5))
    assert not low_confidence(0.6).condition(ctx(confidence=0.6))
    assert not low_confidence(0.6).condition(ctx(confidence=None))
    assert sensitive_data().condition(ctx(text="mail me at ann@example.com"))
    assert not sensitive_data().condition(ctx(text="hello"))
    assert sensitive_data(lambda t: "secret" in t).condition(ctx(text="top secret"))
    r = rate_limit_headroom(0.1, fallback_model=FALLBACK)
    assert r.condition(ctx(rate_limit_remaining=5, rate_limit_limit=100))
    assert not r.condition(ctx(rate_limit_remaining=50, rate_limit_limit=100))
    assert not r.condition(ctx())
    assert timed_out().condition(ctx(timed_out=True))
    assert timed_out().condition(ctx(elapsed_s=3, timeout_s=2))
    assert not timed_out().condition(ctx(elapsed_s=1, timeout_s=2))
    assert cost_over(0.01).condition(ctx(cost_usd=0.02))
    assert not cost_over(0.01).condition(ctx(cost_usd=0.01))
    assert error_rate_over(0.25, min_calls=4).condition(ctx(calls=4, errors=2))
    assert not error_rate_over(0.25, min_calls=4).condition(ctx(calls=3, errors=3))


@pytest.mark.parametrize(
    "build",
    [
        lambda: low_confidence(1.5),
        lambda: rate_limit_headroom(0),
        lambda: rate_limit_headroom(0.1),  # fallback handler without a model
        lambda: cost_over(-1),
        lambda: error_rate_over(1.0),
        lambda: sensitive_data("nope"),
    ],
)
def test_factory_validation(build):
    with pytest.raises(ConfigError):
        build()


def test_default_rules_order_and_fallback():
    names = [r.name for r in default_rules()]
    assert names == ["error_rate", "sensitive_data", "cost_over", "low_confidence", "timeout"]
    assert default_rules(fallback_model=FALLBACK)[-1].name == "rate_limit_headroom"


def test_message_formats_context_and_survives_bad_template():
    assert cost_over(0.01).describe(ctx(cost_usd=0.5)) == "spent $0.50000 > $0.01000"
    bad = EscalationRule("b", lambda c: True, "low", "abort", message="{nope} left")
    assert bad.describe(ctx()) == "{nope} left"


# -- sensitive data detector ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("reach me at jo.doe+x@mail.example.org", True),
        ("card 4111 1111 1111 1111 please", True),
        ("card 4111-1111-1111-1111", True),
        ("order 4111 1111 1111 1112", False),  # fails the Luhn check
        ("password = hunter2", True),
        ("API_KEY: 9fJ2kL0qXv7Rt3Zp8Wm1", True),
        ("API_KEY: YOUR_API_KEY", False),  # a placeholder, not a secret
        ("the threat model is fine", False),
        ("", False),
    ],
)
def test_default_detector(text, hit):
    assert default_sensitive_detector(text) is hit


@given(st.text(alphabet="abcdefghij klmnop,.", max_size=200))
def test_detector_never_fires_on_plain_words(text):
    assert default_sensitive_detector(text) is False


# -- engine ordering and handlers ------------------------------------------------------------------


async def test_first_blocking_rule_decides_and_later_rules_are_not_evaluated():
    seen = []

    def probe(name, result):
        def cond(c):
            seen.append(name)
            return result

        return cond

    engine = EscalationEngine(
        [
            EscalationRule("a", probe("a", False), "low", "abort"),
            EscalationRule("b", probe("b", True), "high", "abort"),
            EscalationRule("c", probe("c", True), "critical", "abort"),
        ]
    )
    verdict = await engine.check(ctx())
    assert verdict.action is Action.ABORT
    assert [e.rule for e in verdict.escalations] == ["b"]
    assert seen == ["a", "b"]
    assert verdict.reason == "b: aborted"


async def test_order_changes_the_outcome():
    retry = EscalationRule("retry", lambda c: True, "low", "retry")
    abort = EscalationRule("abort", lambda c: True, "high", "abort")
    assert (await EscalationEngine([retry, abort]).check(ctx())).action is Action.RETRY
    assert (await EscalationEngine([abort, retry]).check(ctx())).action is Action.ABORT


async def test_approved_review_lets_later_rules_run():
    approver = ScriptedApprover(True, False)
    engine = EscalationEngine([cost_over(0.01), low_confidence(0.6)], approver=approver)
    verdict = await engine.check(ctx(cost_usd=1.0, confidence=0.1))
    assert [(e.rule, e.outcome) for e in verdict.escalations] == [
        ("cost_over", "approved"),
        ("low_confidence", "rejected"),
    ]
    assert verdict.action is Action.STOP
    assert [r.subject for r in approver.asked] == ["cost_over", "low_confidence"]
    assert approver.asked[0].kind == "escalation"
    assert approver.asked[0].details["cost_usd"] == 1.0


async def test_nothing_fires_means_continue():
    verdict = await EscalationEngine(default_rules()).check(ctx(text="hi", confidence=0.9))
    assert verdict.proceed and verdict.escalations == () and verdict.reason == ""


async def test_retry_is_bounded():
    engine = EscalationEngine([timed_out(max_retries=2)])
    outcomes = [await engine.check(ctx(timed_out=True, attempt=a)) for a in range(3)]
    assert [v.action for v in outcomes] == [Action.RETRY, Action.RETRY, Action.ABORT]
    assert outcomes[0].escalations[0].outcome == "retry 1/2"
    assert outcomes[2].escalations[0].outcome == "retries exhausted (2)"


async def test_fallback_returns_the_model_and_refuses_to_loop():
    engine = EscalationEngine([rate_limit_headroom(0.5, fallback_model=FALLBACK)])
    v = await engine.check(ctx(rate_limit_remaining=1, rate_limit_limit=10, model="offline-1"))
    assert v.action is Action.FALLBACK and v.fallback_model is FALLBACK
    v = await engine.check(ctx(rate_limit_remaining=1, rate_limit_limit=10, model="offline-mini"))
    assert v.action is Action.ABORT
    assert "already on fallback" in v.escalations[0].outcome


async def test_abort_handler():
    v = await EscalationEngine([error_rate_over(0.1, min_calls=2)]).check(ctx(calls=2, errors=1))
    assert v.action is Action.ABORT and v.escalations[0].severity == "critical"


def _broken_approver(request):
    raise RuntimeError("pager offline")


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
@pytest.mark.parametrize(
    ("approver", "timeout", "outcome", "action"),
    [
        (ScriptedApprover(True), 1.0, "approved", Action.CONTINUE),
        (ScriptedApprover("yes"), 1.0, "approved", Action.CONTINUE),
        (ScriptedApprover("no"), 1.0, "rejected", Action.STOP),
        (ScriptedApprover(None), 0.05, "approval timed out", Action.STOP),
        (ScriptedApprover(), 1.0, "rejected", Action.STOP),  # past the script: the default, no
        (_broken_approver, 1.0, "approver failed (RuntimeError: pager offline)", Action.STOP),
        (None, 1.0, "no approver configured", Action.STOP),
    ],
)
async def test_human_review_outcomes(approver, timeout, outcome, action):
    engine = EscalationEngine([low_confidence(0.6)], approver=approver, approval_timeout_s=timeout)
    v = await engine.check(ctx(confidence=0.1))
    assert v.action is action
    assert v.escalations[0].outcome.startswith(outcome)


async def test_check_uses_the_runner_approver_when_engine_has_none():
    engine = EscalationEngine([low_confidence(0.6)])
    v = await engine.check(ctx(confidence=0.1), approver=ScriptedApprover(True))
    assert v.action is Action.CONTINUE


async def test_rule_that_raises_is_recorded_not_swallowed():
    def broken(c):
        raise KeyError("confidence")

    events = []
    engine = EscalationEngine(
        [EscalationRule("broken", broken, "high", "abort"), cost_over(0.0)],
        listeners=[lambda e, p: events.append((e, p["rule"], p["outcome"]))],
    )
    v = await engine.check(ctx(cost_usd=1.0))
    assert v.action is Action.STOP  # the next rule still ran
    log = engine.log()
    assert list(log["rule"]) == ["broken", "cost_over"]
    assert log.iloc[0]["outcome"] == "rule error: KeyError: 'confidence'"
    assert events[0] == ("escalation", "broken", "rule error: KeyError: 'confidence'")
    strict = EscalationEngine([EscalationRule("broken", broken, "high", "abort")], strict=True)
    with pytest.raises(EscalationRuleError, match="broken"):
        await strict.check(ctx())


async def test_once_rules_fire_once_per_run():
    engine = EscalationEngine([cost_over(0.01)], approver=ScriptedApprover(True, True))
    assert len((await engine.check(ctx(cost_usd=1, run_id="a"))).escalations) == 1
    assert len((await engine.check(ctx(cost_usd=2, run_id="a"))).escalations) == 0
    assert len((await engine.check(ctx(cost_usd=2, run_id="b"))).escalations) == 1
    engine.clear()
    assert engine.log().empty


async def test_log_and_listeners():
    events = []

    def bad_listener(event, payload):
        raise RuntimeError("observer down")

    engine = EscalationEngine([low_confidence(0.6)], listeners=[bad_listener, lambda e, p: events.append((e, p))])
    v = await engine.check(ctx(confidence=0.2, where="router"))
    assert v.action is Action.STOP
    assert engine.listener_errors == 1
    name, payload = events[0]
    assert name == "escalation"
    assert {k: payload[k] for k in ("rule", "severity", "handler", "outcome")} == {
        "rule": "low_confidence",
        "severity": "medium",
        "handler": "human_review",
        "outcome": "no approver configured",
    }
    log = engine.log()
    assert list(log.columns) == [
        "run_id",
        "where",
        "rule",
        "severity",
        "handler",
        "outcome",
        "action",
        "message",
    ]
    assert log.iloc[0]["message"] == "confidence 0.20 < 0.60"
    assert engine.log(run_id="other").empty


def test_engine_validation():
    with pytest.raises(ConfigError, match="duplicate"):
        EscalationEngine([cost_over(1), cost_over(2)])
    with pytest.raises(ConfigError, match="EscalationRule"):
        EscalationEngine(["cost"])
    with pytest.raises(ConfigError, match="approval_timeout_s"):
        EscalationEngine([], approval_timeout_s=0)


def test_evaluate_is_pure():
    engine = EscalationEngine([cost_over(0.01), low_confidence(0.6)])
    fired = engine.evaluate(ctx(cost_usd=1, confidence=0.9))
    assert [r.name for r in fired] == ["cost_over"]
    assert engine.log().empty


def test_context_error_rate_and_with():
    c = ctx(calls=4, errors=1)
    assert c.error_rate == 0.25 and ctx().error_rate == 0.0
    assert c.with_(errors=2).error_rate == 0.5 and c.errors == 1


# -- approvals through AG2's HITL seam ----------------------------------------------------------------


@pytest.mark.looptime
@pytest.mark.usefixtures("simulated_time")
async def test_request_approval_statuses():
    req = ApprovalRequest("stage", "wf/deploy", "Deploy?")
    assert (await request_approval(lambda r: True, req)).approved
    assert (await request_approval(lambda r: "Approve", req)).status == "approved"
    assert (await request_approval(lambda r: "nope", req)).status == "rejected"

    async def slow(r):
        await asyncio.sleep(5)
        return True

    res = await request_approval(slow, req, timeout_s=0.05)
    assert res.status == "timeout" and not res.approved

    def broken(r):
        raise RuntimeError("pager offline")

    res = await request_approval(broken, req)
    assert res.status == "error" and "pager offline" in res.error
    with pytest.raises(ConfigError):
        await request_approval(lambda r: True, req, timeout_s=0)


async def test_scripted_approver_answers_the_default_after_its_script():
    approver = ScriptedApprover(True)
    req = ApprovalRequest("stage", "s", "ok?")
    assert [await approver(req) for _ in range(3)] == [True, False, False]  # documented default: no
    assert approver.defaulted == 2
    assert list(approver.frame()["subject"]) == ["s", "s", "s"]
    assert await ScriptedApprover(default="yes")(req) == "yes"
    never = ScriptedApprover(default=None)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(never(req), 0.01)  # None never answers: the caller's timeout decides


async def test_scripted_approver_by_subject_does_not_depend_on_how_often_it_is_asked():
    approver = ScriptedApprover(by_subject={"cost_over": True, "wf/deploy": "no"}, default="yes")
    cost = ApprovalRequest("escalation", "cost_over", "spend?")
    deploy = ApprovalRequest("stage", "wf/deploy", "deploy?")
    other = ApprovalRequest("escalation", "low_confidence", "unsure?")
    answers = [await approver(r) for r in (cost, cost, deploy, other, cost, deploy)]
    assert answers == [True, True, "no", "yes", True, "no"]
    assert approver.defaulted == 1
    engine = EscalationEngine([cost_over(0.0, once=False)], approver=approver)
    outcomes = [(await engine.check(ctx(cost_usd=1.0, run_id=str(i)))).action for i in range(3)]
    assert outcomes == [Action.CONTINUE] * 3


async def test_request_approval_passes_the_question_through_agent_hitl():
    seen = []

    async def approver(request):
        seen.append(request)
        return "  Approve "

    req = ApprovalRequest("escalation", "cost_over", "[high] spent? Continue?", {"cost_usd": 1.0})
    result = await request_approval(approver, req, timeout_s=5)
    assert result.status == "approved" and result.answer == "Approve"
    assert seen == [req]


@pytest.mark.parametrize("module", ["agentops.escalation", "agentops.graph", "agentops.workflows"])
def test_every_exception_of_the_chapter_01_packages_is_in_the_one_tree(module):
    import importlib
    import inspect
    import pkgutil

    from agentops.errors import AgentOpsError

    package = importlib.import_module(module)
    names = [module] + [f"{module}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    classes = {
        obj
        for name in names
        for _, obj in inspect.getmembers(importlib.import_module(name), inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__.startswith("agentops")
    }
    assert classes and all(issubclass(c, AgentOpsError) for c in classes), classes


def test_retry_marks_of_the_chapter_01_errors():
    from agentops.errors import RefusalError, is_retryable
    from agentops.graph import GraphError, RouteParseError
    from agentops.workflows import WorkflowError, WorkflowRejected

    assert is_retryable(RouteParseError("no JSON object"))
    assert not any(is_retryable(e("x")) for e in (GraphError, WorkflowError, EscalationRuleError, WorkflowRejected))
    assert issubclass(WorkflowRejected, RefusalError) and issubclass(EscalationRuleError, ConfigError)
