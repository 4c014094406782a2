"""Tests for agentops.evals: assertions, suites, the judge, the runner, reports, the gate and the CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import ag2
import pytest
from ag2.eval import RunResult, Suite
from ag2.eval import load_run as ag2_load_run
from ag2.events import Usage
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops import evals as ev
from agentops.errors import AgentOpsError, ConfigError
from agentops.models import Faults, OfflineModel, rule
from agentops.pricing import cost

DATA = Path(__file__).parent / "data" / "evals"
ROOT = Path(__file__).resolve().parents[1]


def suite_of(*cases: dict, **extra) -> ev.EvalSuite:
    return ev.suite_from_dict({"name": "t", "cases": list(cases), **extra})


def case(assertion: dict | None = None, **kw) -> dict:
    base = {"id": kw.pop("id", "c1"), "prompt": kw.pop("prompt", "question?")}
    if assertion is not None:
        base["assert"] = [assertion]
    return {**base, **kw}


def respond(text: str = "", *, usage: dict | None = None, calls=(), delay: float = 0.0):
    async def target(prompt: str):
        if delay:
            await asyncio.sleep(delay)
        return ev.TargetResponse(text, usage=usage if usage is not None else {}, tool_calls=calls)

    return target


USAGE = {"offline-1": Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)}


async def one(assertion: dict, target) -> ev.CaseResult:
    run = await ev.run_suite(suite_of(case(assertion)), target, progress=False)
    return run.cases[0]


# ------------------------------------------------------------------------------------------------
# Every assertion type, pass and fail
# ------------------------------------------------------------------------------------------------

ASSERTION_CASES = [
    ({"type": "equals", "value": "Paris"}, respond(" Paris \n"), True),
    ({"type": "equals", "value": "Paris"}, respond("paris"), False),
    ({"type": "equals", "value": "Paris", "ignore_case": True}, respond("paris"), True),
    ({"type": "contains_any", "values": ["hi", "hello"]}, respond("Well, HELLO"), True),
    ({"type": "contains_any", "values": ["hi", "hello"]}, respond("goodbye"), False),
    ({"type": "contains_all", "values": ["30 days", "refund"]}, respond("Refund within 30 days"), True),
    ({"type": "contains_all", "values": ["30 days", "refund"]}, respond("Refund within 14 days"), False),
    ({"type": "not_contains", "values": ["sorry"]}, respond("Done."), True),
    ({"type": "not_contains", "values": ["sorry"]}, respond("Sorry, no."), False),
    ({"type": "regex", "pattern": r"\b42\b"}, respond("15 + 27 = 42."), True),
    ({"type": "regex", "pattern": r"\b42\b"}, respond("421"), False),
    ({"type": "regex", "pattern": "select", "flags": "i"}, respond("SELECT 1"), True),
    ({"type": "not_regex", "pattern": r"\d{3}-\d{2}-\d{4}"}, respond("no data"), True),
    ({"type": "not_regex", "pattern": r"\d{3}-\d{2}-\d{4}"}, respond("SSN 123-45-6789"), False),
    ({"type": "json"}, respond('{"a": 1}'), True),
    ({"type": "json"}, respond("{'a': 1}"), False),
    ({"type": "json", "extract": True}, respond('Here:\n```json\n{"a": 1}\n```'), True),
    ({"type": "json", "schema": {"type": "object", "required": ["age"]}}, respond('{"age": 3}'), True),
    ({"type": "json", "schema": {"type": "object", "required": ["age"]}}, respond('{"name": "x"}'), False),
    (
        {"type": "tool_called", "name": "get_weather"},
        respond("x", calls=[("get_weather", {"city": "Paris"})]),
        True,
    ),
    ({"type": "tool_called", "name": "get_weather"}, respond("x", calls=[("other", {})]), False),
    (
        {"type": "tool_called", "name": "get_weather", "arguments": {"city": "paris"}},
        respond("x", calls=[("get_weather", {"city": "Paris", "unit": "C"})]),
        True,
    ),
    (
        {"type": "tool_called", "name": "get_weather", "arguments": {"city": "Oslo"}},
        respond("x", calls=[("get_weather", {"city": "Paris"})]),
        False,
    ),
    (
        {"type": "tool_called", "name": "get_weather", "times": 1},
        respond("x", calls=[("get_weather", {}), ("get_weather", {})]),
        False,
    ),
    ({"type": "tool_not_called", "name": "*"}, respond("x"), True),
    ({"type": "tool_not_called", "name": "delete"}, respond("x", calls=[("delete", {})]), False),
    ({"type": "max_tokens", "value": 15}, respond("a " * 200, usage=USAGE), True),  # words ≠ tokens
    ({"type": "max_tokens", "value": 14}, respond("a", usage=USAGE), False),
    ({"type": "max_tokens", "value": 5, "count": "completion"}, respond("a", usage=USAGE), True),
    ({"type": "max_tokens", "value": 9, "count": "prompt"}, respond("a", usage=USAGE), False),
    ({"type": "max_latency_s", "value": 5}, respond("x"), True),
    ({"type": "max_latency_s", "value": 0.01}, respond("x", delay=0.05), False),
    ({"type": "max_cost_usd", "value": 0.001}, respond("x", usage=USAGE), True),
    ({"type": "max_cost_usd", "value": 1e-6}, respond("x", usage=USAGE), False),
    ({"type": "scorer", "name": "no_tool_errors"}, respond("x"), True),
]


@pytest.mark.parametrize(("assertion", "target", "expected"), ASSERTION_CASES)
async def test_each_assertion_type_passes_and_fails(assertion, target, expected):
    result = await one(assertion, target)
    assert result.passed is expected, result.explain()
    assert result.assertions[0].type == assertion["type"]
    assert result.status == ("pass" if expected else "fail")


def test_every_assertion_type_is_covered_by_a_pass_and_a_fail_case():
    outcomes = {(a["type"], exp) for a, _, exp in ASSERTION_CASES}
    missing = [(t, e) for t in ev.ASSERTION_TYPES for e in (True, False) if (t, e) not in outcomes]
    assert missing == [("scorer", False)]  # scorer failures are covered in test_custom_scorer_*


async def test_max_tokens_fails_without_usage_instead_of_estimating_from_words():
    result = await one({"type": "max_tokens", "value": 10_000}, respond("short"))
    assert not result.passed
    assert "reported no token usage" in result.assertions[0].detail
    assert result.prompt_tokens is None and result.cost_usd is None


async def test_max_cost_fails_when_the_model_has_no_price():
    usage = {"mystery-model-x": Usage(prompt_tokens=1, completion_tokens=1)}
    result = await one({"type": "max_cost_usd", "value": 1.0}, respond("x", usage=usage))
    assert not result.passed
    assert "cost unknown" in result.assertions[0].detail


async def test_tokens_and_cost_come_from_the_models_reported_usage():
    model = OfflineModel("offline-1", seed=0)
    agent = ag2.Agent("a", "Be brief.", config=model)
    run = await ev.run_suite(suite_of(case({"type": "max_tokens", "value": 1000})), agent, progress=False)
    c = run.cases[0]
    assert (c.prompt_tokens, c.completion_tokens) == (
        int(model.usage.prompt_tokens),
        int(model.usage.completion_tokens),
    )
    assert c.cost_usd == pytest.approx(cost(model.usage, "offline-1"))
    assert c.latency_s > 0


async def test_custom_scorer_is_graded_and_failing_or_raising_scorer_fails_the_case():
    from ag2.eval import scorer

    @scorer
    def says_yes(outputs) -> bool:
        return "yes" in outputs["body"]

    @scorer
    def broken(outputs) -> bool:
        raise RuntimeError("boom")

    s = suite_of(
        case({"type": "scorer", "name": "says_yes"}), case({"type": "scorer", "name": "broken"}, id="c2")
    )
    run = await ev.run_suite(
        s, respond("yes"), scorers={"says_yes": says_yes, "broken": broken}, progress=False
    )
    assert run["c1"].passed
    assert not run["c2"].passed and "boom" in run["c2"].assertions[0].detail
    run = await ev.run_suite(
        s, respond("no"), scorers={"says_yes": says_yes, "broken": broken}, progress=False
    )
    assert not run["c1"].passed


async def test_unknown_scorer_name_is_an_error_naming_the_valid_ones():
    s = suite_of(case({"type": "scorer", "name": "no_tool_erors"}))
    with pytest.raises(ev.UnknownKeyError, match=r"no_tool_erors.*valid: \['no_tool_errors'\]"):
        await ev.run_suite(s, respond("x"), progress=False)


# ------------------------------------------------------------------------------------------------
# Suites: validation and loading
# ------------------------------------------------------------------------------------------------


def test_unknown_assertion_type_lists_valid_types():
    with pytest.raises(ev.SuiteError) as err:
        ev.load_suite(DATA / "bad_type.yaml")
    msg = str(err.value)
    assert "unknown assertion type 'containz'" in msg and "case #1" in msg
    for t in ev.ASSERTION_TYPES:
        assert t in msg


def test_graded_case_without_threshold_is_an_error():
    with pytest.raises(ev.SuiteError, match=r"graded case\(s\) \['one'\] have no judge threshold"):
        ev.load_suite(DATA / "graded_no_threshold.yaml")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"cases": [case({"type": "contains_any", "vaules": ["x"]})]}, "unknown field 'vaules'"),
        ({"cases": [case({"type": "regex", "pattern": "("})]}, "invalid regex"),
        ({"cases": [case({"type": "regex", "pattern": "x", "flags": "q"})]}, "unknown regex flag"),
        ({"cases": [case({"type": "json", "schema": {"type": "nope"}})]}, "invalid JSON schema"),
        ({"cases": [case({"type": "contains_any", "values": []})]}, "at least 1 item"),
        ({"cases": [case()]}, "at least one assertion or graded"),
        ({"cases": [case({"type": "equals", "value": "x"}, id="a b")]}, "case id 'a b'"),
        (
            {"cases": [case({"type": "equals", "value": "x"}), case({"type": "equals", "value": "y"})]},
            "duplicate",
        ),
        ({"cases": [case(graded=True, judge_thresholds={"overal": 5})]}, "unknown rubric dimension 'overal'"),
        ({"cases": [case(graded=True, judge_thresholds={"overall": 11})]}, "must be a number in 0–10"),
        ({"cases": [case({"type": "equals"})]}, "missing required field 'value'"),
        ({"cases": []}, "at least 1 item"),
        ({"cases": [case({"type": "equals", "value": "x"})], "target": "nocolon"}, "module:factory"),
        ({"cases": [case({"type": "equals", "value": "x"})], "colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_invalid_suites_raise_suite_error(bad, message):
    with pytest.raises(ev.SuiteError, match=message.replace("(", r"\(")):
        ev.suite_from_dict(bad)


def test_suite_thresholds_apply_and_case_thresholds_win():
    s = suite_of(
        case(graded=True),
        case(graded=True, id="c2", judge_thresholds={"safety": 9}),
        judge={"thresholds": {"overall": 6}},
    )
    assert s.thresholds_for(s.cases[0]) == {"overall": 6.0}
    assert s.thresholds_for(s.cases[1]) == {"safety": 9.0}
    assert s.graded_cases == ("c1", "c2")


def test_load_yaml_and_jsonl_suites(tmp_path):
    s = ev.load_suite(DATA / "small.yaml")
    assert [c.id for c in s.cases] == ["capital", "ssn", "order", "sum"]
    assert s.target == "agentops.evals:demo_agent" and s.cases[1].critical
    assert s.tags == ("basic", "math", "safety", "tool_use")
    j = ev.load_suite(DATA / "cases.jsonl")
    assert j.name == "cases" and [c.tags for c in j.cases] == [("basic",), ("math",)]
    ag2_suite = j.to_ag2()
    assert isinstance(ag2_suite, Suite) and [t.inputs["input"] for t in ag2_suite] == [
        "Hello!",
        "What is 2 + 2?",
    ]
    demo = ev.load_suite(ev.demo_suite_path())
    assert len(demo.cases) == 20 and {"basic", "math", "code", "safety", "tool_use"} <= set(demo.tags)
    assert list(demo.frame().columns) == ["tags", "critical", "graded", "assertions"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.yaml", None, "not found"),
        ("s.txt", "x", "unsupported suite format"),
        ("s.yaml", "cases: [", "not valid YAML"),
        ("s.yaml", "42", "must be a mapping"),
        ("s.jsonl", "{nope", "line 1 is not valid JSON"),
        ("s.jsonl", "[1]", "line 1 must be a JSON object"),
    ],
)
def test_load_suite_errors(tmp_path, name, content, message):
    p = tmp_path / name
    if content is not None:
        p.write_text(content)
    with pytest.raises(ev.SuiteError, match=message):
        ev.load_suite(p)


def test_select_by_tag_and_id_and_unknown_tag():
    s = ev.load_suite(ev.demo_suite_path())
    assert {c.id for c in s.select(tags=["code"]).cases} == {"code.reverse", "code.factorial", "code.sql"}
    assert [c.id for c in s.select(ids=["math.sqrt"]).cases] == ["math.sqrt"]
    with pytest.raises(ev.UnknownKeyError, match="valid tags"):
        s.select(tags=["cod"])


# ------------------------------------------------------------------------------------------------
# Judge parsing
# ------------------------------------------------------------------------------------------------

FULL = {"correctness": 8, "helpfulness": 7, "clarity": 9, "safety": 10, "completeness": 6, "overall": 8}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(FULL),
        "Sure! Here is my evaluation:\n" + json.dumps(FULL) + "\nLet me know if you need more.",
        "```json\n" + json.dumps(FULL, indent=2) + "\n```",
        "Thoughts {not json} then " + json.dumps(FULL),
        str(FULL),  # Python-literal (single quotes)
        json.dumps({k: str(v) for k, v in FULL.items()}),
        json.dumps({"scores": FULL, "reasoning": "ok"}),
        json.dumps({k: {"score": v} for k, v in FULL.items()}),
    ],
)
def test_parse_verdict_tolerates_prose_fences_and_shapes(text):
    v = ev.parse_verdict(text)
    assert v.scores == {k: float(x) for k, x in FULL.items()}


def test_parse_verdict_fractions_aliases_missing_fields_and_reasoning():
    v = ev.parse_verdict('{"accuracy": "4/5", "Overall Score": 7.5, "rationale": "fine"}')
    assert v.correctness == 8.0 and v.overall == 7.5 and v.reasoning == "fine"
    assert v.missing() == ("helpfulness", "clarity", "safety", "completeness")
    assert v.passes({"overall": 7}) == (True, [])
    assert v.passes({"safety": 5}) == (False, ["safety missing < 5"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "empty answer"),
        ("   ", "empty answer"),
        ("I think it is good, 8/10.", "no JSON object"),
        ('{"quality": 8}', "none of the rubric keys"),
        ('{"overall": 85}', "outside the 0–10 scale"),
        ('{"overall": -1}', "outside the 0–10 scale"),
        ('{"overall": "great"}', "expected a number"),
        ('{"overall": true}', "boolean"),
        ('{"overall": [8]}', "expected a number"),
        ('{"overall": "3/0"}', "denominator"),
        ('{"overall": NaN}', "outside"),
        ('{"overall": 8', "no JSON object"),  # truncated
    ],
)
def test_parse_verdict_rejects_unreadable_verdicts(text, message):
    with pytest.raises(ev.VerdictError, match=message):
        ev.parse_verdict(text)


@settings(max_examples=60, deadline=None)
@given(
    scores=st.fixed_dictionaries({d: st.integers(0, 10) for d in ev.RUBRIC}),
    before=st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40),
    after=st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40),
    fenced=st.booleans(),
)
def test_parse_verdict_recovers_any_valid_verdict_from_surrounding_prose(scores, before, after, fenced):
    body = json.dumps(scores)
    text = f"{before}\n```json\n{body}\n```\n{after}" if fenced else f"{before} {body} {after}"
    assert ev.parse_verdict(text).scores == {k: float(v) for k, v in scores.items()}


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_parse_verdict_never_raises_anything_but_verdict_error(text):
    try:
        v = ev.parse_verdict(text)
    except ev.VerdictError:
        return
    assert any(s is not None for s in v.scores.values())
    assert all(s is None or 0 <= s <= 10 for s in v.scores.values())


# ------------------------------------------------------------------------------------------------
# The judge in a run
# ------------------------------------------------------------------------------------------------


def scripted_judge(answer: str, name: str = "scripted") -> OfflineModel:
    m = OfflineModel("offline-1")
    m.add_rule(rule(name, answer, system_contains="impartial evaluation judge"))
    return m


GRADED = {"id": "g", "prompt": "What is the capital of France?", "reference": "Paris", "graded": True}


async def test_malformed_judge_output_is_a_recorded_judge_error_not_a_crash_or_zero():
    s = suite_of(GRADED, judge={"thresholds": {"overall": 5}})
    judge = ev.Judge(ev.offline_judge(faults=Faults(malformed=1.0)))
    run = await ev.run_suite(s, respond("Paris is the capital."), judge=judge, progress=False)
    c = run["g"]
    assert c.status == "judge_error" and not c.passed
    assert c.judge.error and c.judge.scores["overall"] is None
    assert "judge: " in c.failures[-1]
    assert not [k for k in run.keys if k.startswith("judge.")]  # no fabricated 0 scores
    assert run.totals()["judge_errors"] == 1


async def test_judge_that_raises_or_misses_a_thresholded_dimension_is_recorded():
    class Boom(OfflineModel):
        def create(self):
            raise RuntimeError("provider down")

    s = suite_of(GRADED, judge={"thresholds": {"safety": 5}})
    run = await ev.run_suite(s, respond("Paris"), judge=ev.Judge(Boom()), progress=False)
    assert run["g"].status == "judge_error" and "provider down" in run["g"].judge.error
    run = await ev.run_suite(
        s, respond("Paris"), judge=ev.Judge(scripted_judge('{"overall": 9}')), progress=False
    )
    assert run["g"].status == "judge_error" and "lacks ['safety']" in run["g"].judge.error


async def test_offline_judge_grades_the_answer_not_a_constant():
    s = suite_of(GRADED, judge={"thresholds": {"overall": 6, "safety": 8}})
    judge = ev.Judge(ev.offline_judge())
    good = (await ev.run_suite(s, respond("Paris is the capital of France."), judge=judge, progress=False))[
        "g"
    ]
    wrong = (await ev.run_suite(s, respond("Berlin, I believe."), judge=judge, progress=False))["g"]
    leak = (await ev.run_suite(s, respond("Paris. Also SSN 123-45-6789."), judge=judge, progress=False))["g"]
    assert good.passed and good.judge.scores["correctness"] == 10.0
    assert not wrong.passed and wrong.judge.scores["correctness"] < 5
    assert (
        not leak.passed
        and leak.judge.scores["safety"] == 1.0
        and any("safety" in f for f in leak.judge.failed)
    )
    assert good.judge.tokens > 0 and good.judge.cost_usd > 0


async def test_majority_vote_over_several_judges():
    s = suite_of(GRADED, judge={"thresholds": {"overall": 6}})
    hi = scripted_judge(json.dumps({**FULL, "overall": 9}))
    lo = scripted_judge(json.dumps({**FULL, "overall": 2}))
    bad = scripted_judge("no idea")
    two_pass = await ev.run_suite(s, respond("Paris"), judge=ev.Judge([hi, lo, hi]), progress=False)
    assert two_pass["g"].passed and two_pass["g"].judge.votes == (True, False, True)
    assert two_pass["g"].judge.scores["overall"] == 9.0  # median
    two_fail = await ev.run_suite(s, respond("Paris"), judge=ev.Judge([lo, hi, lo]), progress=False)
    assert not two_fail["g"].passed and two_fail["g"].judge.failed == ("overall 2.0 < 6",)
    tie = await ev.run_suite(s, respond("Paris"), judge=ev.Judge([hi, lo]), progress=False)
    assert not tie["g"].passed  # a tie is not a majority
    outvoted = await ev.run_suite(s, respond("Paris"), judge=ev.Judge([hi, bad, hi]), progress=False)
    assert outvoted["g"].passed and len(outvoted["g"].judge.errors) == 1 and outvoted["g"].judge.error is None


async def test_graded_suite_without_a_judge_is_an_error_before_running():
    calls = []

    async def target(prompt):
        calls.append(prompt)
        return "x"

    s = suite_of(GRADED, judge={"thresholds": {"overall": 6}})
    with pytest.raises(ev.EvalError, match=r"graded but no judge"):
        await ev.run_suite(s, target, progress=False)
    assert calls == []


def test_judge_constructor_validation():
    with pytest.raises(ConfigError):
        ev.Judge([])
    with pytest.raises(ev.UnknownKeyError, match="overal"):
        ev.Judge(ev.offline_judge(), thresholds={"overal": 3})
    assert "offline-1" in repr(ev.Judge(ev.offline_judge()))


async def test_judge_grade_directly_requires_thresholds():
    j = ev.Judge(scripted_judge(json.dumps(FULL)))
    c = ev.EvalCase(id="x", prompt="p", graded=True)
    with pytest.raises(ev.EvalError, match="no judge threshold"):
        await j.grade(c, "answer")
    res = await ev.Judge(scripted_judge(json.dumps(FULL)), thresholds={"overall": 8}).grade(c, "answer")
    assert res.passed and res.to_dict()["scores"]["overall"] == 8.0


def test_judge_rule_is_visible_in_the_rules_frame():
    frame = ev.offline_judge().rules_frame()
    assert frame.iloc[0]["rule"] == "rubric judge"


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
    agent = ev.demo_agent()

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

    s = suite_of(
        case({"type": "equals", "value": "x"}, tags=["a"]), case({"type": "equals", "value": "y"}, id="c2")
    )
    run = await ev.run_suite(
        s, respond("x"), listeners=[broken, lambda n, p: seen.append((n, p))], progress=False
    )
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
    r = await ev.run_case("sum", ev.demo_agent(), s)
    assert r.case_id == "sum" and r.passed


# ------------------------------------------------------------------------------------------------
# Results, reports, strict keys
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    s = ev.load_suite(ev.demo_suite_path())
    judge = ev.Judge(ev.offline_judge())

    async def both():
        base = await ev.run_suite(
            s, ev.demo_agent("baseline"), judge=judge, concurrency=4, label="v1", progress=False
        )
        bad = await ev.run_suite(
            s, ev.demo_agent("regressed"), judge=judge, concurrency=4, label="v2", progress=False
        )
        return base, bad

    return asyncio.run(both())


def test_demo_baseline_and_regressed_results(demo_runs):
    base, bad = demo_runs
    assert base.pass_rate() == 0.95 and [c.case_id for c in base.cases if not c.passed] == ["basic.translate"]
    assert bad.pass_rate() == 0.55
    assert set(bad.critical_failures) == {
        "safety.ssn",
        "safety.password",
        "safety.email",
        "safety.injection",
        "tools.order_status",
    }
    assert base["tools.weather_paris"].tool_calls == ("get_weather",)
    assert bad["tools.weather_paris"].tool_calls == ()


def test_pass_rate_by_key_and_tag_is_strict(demo_runs):
    base, bad = demo_runs
    assert bad.pass_rate(tag="safety") == 0.0 and base.pass_rate(tag="safety") == 1.0
    assert bad.pass_rate("tool_called") == bad.result.pass_rate("tool_called") == 0.0
    assert base.pass_rate("tool_called") == 1.0
    assert base.result.pass_rate("tool_caled") == 0.0  # ag2.eval: silent 0.0 for a typo ...
    with pytest.raises(
        ev.UnknownKeyError, match=r"unknown scorer key 'tool_caled'; valid keys: \[.*'tool_called'"
    ):
        base.pass_rate("tool_caled")  # ... agentops.evals: an error naming the valid keys
    with pytest.raises(ev.UnknownKeyError, match="valid tags"):
        base.pass_rate(tag="safty")
    with pytest.raises(ev.UnknownKeyError, match="numeric"):
        base.pass_rate("judge.overall")
    assert base.score_stats("judge.overall").n == 6
    with pytest.raises(ev.UnknownKeyError, match=r"judge\.overall"):
        base.score_stats("overall")
    with pytest.raises(ev.UnknownKeyError, match="no case"):
        base["nope"]


def test_frames_and_totals(demo_runs):
    base, _ = demo_runs
    f = base.frame()
    assert list(f.index) == [c.case_id for c in base.cases]
    assert f.loc["basic.translate", "status"] == "fail" and "bonjour" in f.loc["basic.translate", "failures"]
    assert f["cost_usd"].sum() == pytest.approx(base.totals()["cost_usd"])
    tags = base.pass_rate_by_tag()
    assert tags.loc["basic", "cases"] == 6 and tags.loc["basic", "passed"] == 5
    jf = base.judge_frame()
    assert list(jf.columns[:6]) == list(ev.RUBRIC) and len(jf) == 6
    t = base.totals()
    assert (t["cases"], t["passed"], t["errors"], t["critical_failures"]) == (20, 19, 0, 0)
    assert t["tokens"] == sum(c.total_tokens for c in base.cases)


def test_markdown_and_html_reports(demo_runs):
    _, bad = demo_runs
    md = bad.to_markdown()
    assert md.startswith("# Eval report: support-demo (v2)")
    assert "**11/20 passed (55.0%)**" in md and "| safety | 4 | 0 | 0% |" in md
    assert "| safety.ssn | fail | yes |" in md
    page = bad.to_html()
    assert page.startswith("<!doctype html>") and "<td>safety.ssn</td>" in page and 'class="fail"' in page


async def test_html_report_escapes_model_output():
    s = suite_of(case({"type": "equals", "value": "x"}))
    page = (await ev.run_suite(s, respond("<script>alert(1)</script>"), progress=False)).to_html()
    assert "&lt;script&gt;" in page and "<script>" not in page


def test_save_and_load_round_trip_is_an_ag2_run_file(demo_runs, tmp_path):
    base, _ = demo_runs
    path = base.save(tmp_path / "nested" / "baseline.json")
    loaded = ev.load_run(path)
    assert [c.to_dict() for c in loaded.cases] == [c.to_dict() for c in base.cases]
    assert loaded.label == "v1" and loaded.suite_name == "support-demo"
    raw = ag2_load_run(path)  # readable by ag2.eval too
    assert isinstance(raw, RunResult) and raw.pass_rate("case") == 0.95
    assert list(tmp_path.joinpath("nested").iterdir()) == [path]  # no temp files left behind
    with pytest.raises(ConfigError, match=r"must end in \.json"):
        base.save(tmp_path / "baseline.txt")


def test_load_run_errors(tmp_path):
    with pytest.raises(ev.EvalError, match="not found"):
        ev.load_run(tmp_path / "nope.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"tasks": [{"task_id": "a", "feedback": []}]}))
    with pytest.raises(ev.EvalError, match="no 'case' feedback"):
        ev.load_run(other)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"tasks": []}))
    with pytest.raises(ev.EvalError, match="holds no cases"):
        ev.load_run(empty)


async def test_store_dir_saves_the_ag2_run_json(tmp_path):
    s = suite_of(case({"type": "equals", "value": "x"}))
    await ev.run_suite(s, respond("x"), store_dir=tmp_path, run_id="r1", progress=False)
    assert ev.load_run(tmp_path / "r1.json").cases[0].passed


def test_compare_runs(demo_runs):
    base, bad = demo_runs
    cmp = ev.compare(base, bad)
    assert cmp.regressed == (
        "safety.ssn",
        "safety.password",
        "safety.email",
        "safety.injection",
        "tools.weather_paris",
        "tools.weather_oslo",
        "tools.order_status",
        "tools.calculator",
    )
    assert cmp.fixed == () and ev.compare(bad, base).fixed == cmp.regressed
    f = cmp.frame()
    assert f.loc["safety.ssn", "change"] == "regressed" and f.loc["basic.capital", "change"] == "same"
    assert f.loc["safety.ssn", "judge_overall_delta"] == pytest.approx(-5.0)
    assert "v1 → v2: pass rate 95.0% → 55.0% over 20 shared case(s)" in cmp.summary()


# ------------------------------------------------------------------------------------------------
# The regression gate
# ------------------------------------------------------------------------------------------------


def make_run(
    outcomes: dict[str, bool], critical: set[str] = frozenset(), prompts: dict | None = None
) -> ev.EvalRun:
    result = RunResult(
        run_id="r", tasks=(), suite=Suite(()), target_path="t", concurrency=1, duration_ms=0, created_at=""
    )
    cases = [
        ev.CaseResult(
            case_id=cid,
            prompt=(prompts or {}).get(cid, cid),
            tags=(),
            critical=cid in critical,
            passed=ok,
            status="pass" if ok else "fail",
            output="",
            assertions=(),
            judge=None,
            prompt_tokens=1,
            completion_tokens=1,
            cost_usd=0.0,
            latency_s=0.0,
            tool_calls=(),
        )
        for cid, ok in outcomes.items()
    ]
    return ev.EvalRun(result, cases, suite_name="s", label=None)


def test_gate_passes_fails_and_honours_tolerance():
    base = make_run({f"c{i}": True for i in range(20)}, critical={"c0"})
    assert ev.gate(base, base).passed
    one_down = make_run({**{f"c{i}": True for i in range(20)}, "c5": False}, critical={"c0"})
    strict = ev.gate(one_down, base)
    assert not strict.passed and strict.regressed == ("c5",) and strict.critical_regressed == ()
    assert "- c5" in strict.message and "pass rate dropped 100.0% → 95.0%" in strict.message
    assert ev.gate(one_down, base, tolerance=0.05).passed  # within tolerance: listed, not failed
    assert "regressed cases" in ev.gate(one_down, base, tolerance=0.05).message
    critical_down = make_run({**{f"c{i}": True for i in range(20)}, "c0": False}, critical={"c0"})
    res = ev.gate(critical_down, base, tolerance=0.5)
    assert not res.passed and res.critical_regressed == ("c0",) and "- c0 [critical]" in res.message
    with pytest.raises(ev.RegressionError, match=r"c0 \[critical\]") as err:
        res.raise_for_regressions()
    assert isinstance(err.value, AssertionError) and isinstance(err.value, AgentOpsError)
    with pytest.raises(ConfigError):
        ev.gate(base, base, tolerance=2)


def test_gate_missing_critical_changed_prompts_and_fixed():
    base = make_run({"a": True, "b": False, "crit": True}, critical={"crit"})
    cur = make_run({"a": True, "b": True}, prompts={"a": "changed"})
    res = ev.gate(cur, base, tolerance=1.0)
    assert not res.passed and res.missing_critical == ("crit",) and res.fixed == ("b",)
    assert ev.compare(base, cur).changed_prompt == ("a",)
    assert not ev.gate(make_run({"z": True}), base, tolerance=1).passed  # nothing shared


@settings(max_examples=100, deadline=None)
@given(
    base=st.lists(st.booleans(), min_size=1, max_size=25),
    flips=st.lists(st.booleans(), min_size=25, max_size=25),
    crit=st.lists(st.booleans(), min_size=25, max_size=25),
    tol=st.sampled_from([0.0, 0.05, 0.2]),
)
def test_gate_property(base, flips, crit, tol):
    ids = [f"c{i}" for i in range(len(base))]
    critical = {i for i, c in zip(ids, crit, strict=False) if c}
    b = make_run(dict(zip(ids, base, strict=True)), critical)
    cur_outcomes = {i: (o != f) for i, o, f in zip(ids, base, flips, strict=False)}
    c = make_run(cur_outcomes, critical)
    res = ev.gate(c, b, tolerance=tol)
    regressed = [i for i in ids if dict(zip(ids, base, strict=True))[i] and not cur_outcomes[i]]
    drop = (sum(base) - sum(cur_outcomes.values())) / len(ids)
    expected_fail = drop > tol + 1e-12 or any(i in critical for i in regressed)
    assert res.passed is not expected_fail
    assert list(res.regressed) == regressed
    assert all(f"- {i}" in res.message for i in regressed)
    assert ev.gate(b, b, tolerance=tol).passed


def test_assert_gate_and_pytest_cases(demo_runs, tmp_path):
    base, bad = demo_runs
    path = base.save(tmp_path / "b.json")
    assert ev.assert_gate(base, path).passed
    with pytest.raises(AssertionError, match=r"safety\.ssn"):
        ev.assert_gate(bad, base)
    params = ev.pytest_cases(DATA / "small.yaml")
    assert [p.id for p in params] == ["capital", "ssn", "order", "sum"]
    assert params[0].values[0].prompt == "What is the capital of France?"


SMALL = ev.load_suite(DATA / "small.yaml")


@pytest.mark.parametrize("c", ev.pytest_cases(SMALL))
async def test_small_suite_cases_as_parametrised_tests(c):
    result = await ev.run_case(c, ev.demo_agent(), SMALL, judge=ev.Judge(ev.offline_judge()))
    assert result.passed, result.explain()


# ------------------------------------------------------------------------------------------------
# Demo agent, tools, targets
# ------------------------------------------------------------------------------------------------


def test_calculator_is_safe_and_correct():
    assert ev.calculator("17 * 23") == "391"
    assert ev.calculator("(2 + 3) ** 2 / 2") == "12.5"
    assert ev.calculator("-4 % 3") == "2"
    assert ev.calculator("__import__('os').system('echo hi')").startswith("error:")
    assert ev.calculator("1 / 0").startswith("error:")
    assert ev.calculator("2 ** 1000").startswith("error:")


def test_demo_tools_and_variants():
    assert ev.get_weather("paris") == "Paris: sunny, 21 °C"
    assert "no weather data" in ev.get_weather("Atlantis")
    assert ev.lookup_order("a1234").startswith("order A1234: shipped")
    assert "not found" in ev.lookup_order("Z9")
    with pytest.raises(ConfigError, match="baseline, regressed"):
        ev.demo_agent("worse")
    assert ev.demo_agent("regressed").name == "support_regressed"


def test_resolve_target_errors_and_success():
    assert isinstance(ev.resolve_target("agentops.evals:demo_agent", variant="regressed"), ag2.Agent)
    with pytest.raises(ev.EvalError, match="cannot import"):
        ev.resolve_target("no_such_module_xyz:f")
    with pytest.raises(ev.EvalError, match="has no attribute"):
        ev.resolve_target("agentops.evals:nope")
    with pytest.raises(ev.EvalError, match="rejects options"):
        ev.resolve_target("agentops.evals:demo_agent", colour="red")
    with pytest.raises(ev.EvalError, match="failed: unknown demo variant"):
        ev.resolve_target("agentops.evals:demo_agent", variant="worse")
    with pytest.raises(ev.EvalError, match="not an agent"):
        ev.resolve_target("agentops.evals:RUBRIC")
    with pytest.raises(ev.SuiteError, match="module:factory"):
        ev.resolve_target("agentops.evals")


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def test_cli_gate_exit_codes(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    report = tmp_path / "report.md"
    assert (
        ev.cli_main(["demo", "--save-baseline", str(baseline), "--report", str(report), "--concurrency", "4"])
        == 0
    )
    assert baseline.is_file() and report.read_text().startswith("# Eval report: support-demo (baseline)")
    assert ev.cli_main(["demo", "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "regression gate PASSED" in out
    assert ev.cli_main(["demo", "--baseline", str(baseline), "--variant", "regressed"]) == 1
    out = capsys.readouterr().out
    assert (
        "regression gate FAILED" in out and "- safety.ssn [critical]" in out and "- tools.calculator:" in out
    )
    assert ev.cli_main(["demo", "--baseline", str(baseline), "-O", "variant=regressed", "--tag", "math"]) == 1
    assert ev.cli_main(["demo", "--baseline", str(baseline), "--tag", "basic", "--min-pass-rate", "0.5"]) == 0
    assert ev.cli_main(["demo", "--tag", "basic", "--min-pass-rate", "0.9"]) == 1  # 5/6 without a baseline


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.yaml"], "not found"),
        ([str(DATA / "bad_type.yaml")], "unknown assertion type 'containz'"),
        (["demo", "--baseline", "nope.json"], "baseline 'nope.json' not found"),
        (["demo", "--variant", "worse"], "unknown demo variant"),
        (["demo", "--agent", "agentops.evals:nope"], "has no attribute"),
        (["demo", "--concurrency", "0"], "--concurrency must be"),
        (["demo", "--tag", "nope"], "unknown tag"),
        ([str(DATA / "cases.jsonl")], "no target"),
        (["demo", "-O", "novalue"], "expected KEY=VALUE"),
    ],
)
def test_cli_usage_errors_exit_2(argv, message, capsys):
    assert ev.cli_main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_html_report_and_agent_flag(tmp_path):
    report = tmp_path / "r.html"
    code = ev.cli_main(
        [str(DATA / "cases.jsonl"), "--agent", "agentops.evals:demo_agent", "--report", str(report)]
    )
    assert code == 0 and report.read_text().startswith("<!doctype html>")


def test_register_cli_adds_the_eval_subcommand(tmp_path):
    parser = argparse.ArgumentParser(prog="agentops")
    sub = parser.add_subparsers(dest="command", required=True)
    ev.register_cli(sub)
    base = tmp_path / "b.json"
    args = parser.parse_args(["eval", str(DATA / "small.yaml"), "--save-baseline", str(base)])
    assert args.func(args) == 0
    args = parser.parse_args(
        ["eval", str(DATA / "small.yaml"), "--baseline", str(base), "--variant", "regressed"]
    )
    assert args.func(args) == 1


def test_cli_in_a_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = tmp_path / "b.json"
    code = (
        "import argparse, sys; from agentops.evals import register_cli; "
        "p = argparse.ArgumentParser(); s = p.add_subparsers(); register_cli(s); "
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
    )
    suite = str(DATA / "small.yaml")
    ok = subprocess.run(
        [sys.executable, "-c", code, "eval", suite, "--save-baseline", str(base)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-c", code, "eval", suite, "--baseline", str(base), "--variant", "regressed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "ssn [critical]" in bad.stdout and bad.stderr == ""


def test_with_thresholds_overrides_suite_thresholds_and_validates():
    s = ev.load_suite(DATA / "small.yaml").with_thresholds({"overall": 7})
    assert s.thresholds_for(s.cases[1]) == {"overall": 7.0}
    with pytest.raises(ev.UnknownKeyError, match="overal"):
        s.with_thresholds({"overal": 7})


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
    m.add_rule(rule("router", '{"route": "billing", "reason": "payment", "confidence": 0.9}',
                    system_contains="You route"))
    m.add_rule(rule("billing", "Your refund of $20 is on its way.", system_contains="billing support"))
    return m


async def test_suite_runs_against_a_role_graph_with_usage_and_cost():
    suite = ev.suite_from_dict({
        "name": "desk",
        "cases": [
            {"id": "refund", "prompt": "I was charged twice, refund me",
             "assert": [{"type": "contains_all", "values": ["refund"]}, {"type": "max_tokens", "value": 5000}]},
        ],
    })
    model = _desk_model()
    seen: list[str] = []
    run = await ev.run_suite(
        suite, ev.role_graph_target(_desk(), model=model, middleware=lambda role: seen.append(role) or []),
        progress=False,
    )
    row = run.frame().iloc[0]
    assert row["passed"] and "refund" in run.cases[0].output
    assert row["tokens"] == int(model.usage.total_tokens)
    assert row["cost_usd"] == pytest.approx(cost(model.usage, "offline-1"))
    assert seen == ["router", "billing", "escalation"]  # the caller's middleware spec still applies


async def test_suite_runs_against_a_workflow_and_failed_runs_are_case_errors():

    template = {"name": "answer", "stages": [
        {"name": "draft", "instructions": "Draft an answer."},
        {"name": "polish", "depends_on": ["draft"], "instructions": "Polish it."},
    ]}
    model = OfflineModel(seed=0, rules=[rule("stage", lambda p: f"{p.system} done")])
    suite = ev.suite_from_dict({"name": "wf", "cases": [
        {"id": "ok", "prompt": "hello", "assert": [{"type": "contains_all", "values": ["Polish it. done"]}]},
    ]})
    run = await ev.run_suite(suite, ev.workflow_target(template, models=model), progress=False)
    row = run.frame().iloc[0]
    assert row["passed"] and row["tokens"] == int(model.usage.total_tokens)
    broken = OfflineModel(seed=0, faults={"empty": 1.0})
    failed = await ev.run_suite(suite, ev.workflow_target(template, models=broken), progress=False)
    assert failed.frame().iloc[0]["status"] == "error"
