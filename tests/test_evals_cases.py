"""Tests for agentops.evals.assertions and agentops.evals.cases: every assertion type, suites as data."""

from __future__ import annotations

import re

import ag2
import pytest
from ag2.eval import Suite
from ag2.events import Usage
from evals_support import DATA, USAGE, case, one, respond, suite_of
from pydantic import ValidationError

from agentops import evals as ev
from agentops.errors import ConfigError
from agentops.evals.assertions import ASSERTION_TYPES, ContainsAny, JsonValid, MaxTokens, Observed, Regex
from agentops.evals.cases import EvalCase, EvalSuite, JudgeSettings, SuiteDefaults, suite_from_dict
from agentops.evals.demo import demo_suite_path
from agentops.models import OfflineModel
from agentops.pricing import cost
from agentops.usage import UnpricedModelWarning

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
    missing = [(t, e) for t in ASSERTION_TYPES for e in (True, False) if (t, e) not in outcomes]
    assert missing == [("scorer", False)]  # scorer failures are covered in test_custom_scorer_*


async def test_max_tokens_fails_without_usage_instead_of_estimating_from_words():
    result = await one({"type": "max_tokens", "value": 10_000}, respond("short"))
    assert not result.passed
    assert "reported no token usage" in result.assertions[0].detail
    assert result.prompt_tokens is None and result.cost_usd is None


async def test_an_unpriced_model_keeps_its_tokens_and_reports_cost_unknown_not_an_error():
    usage = {"mystery-model-x": Usage(prompt_tokens=1, completion_tokens=1)}
    with pytest.warns(UnpricedModelWarning, match="register_price"):
        result = await one({"type": "max_cost_usd", "value": 1.0}, respond("x", usage=usage))
    assert result.status == "fail" and result.error is None
    assert (result.prompt_tokens, result.completion_tokens, result.cost_usd) == (1, 1, None)
    assert "cost unknown: unpriced model(s) ['mystery-model-x']" in result.assertions[0].detail
    assert "register_price" in result.assertions[0].detail


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

    s = suite_of(case({"type": "scorer", "name": "says_yes"}), case({"type": "scorer", "name": "broken"}, id="c2"))
    run = await ev.run_suite(s, respond("yes"), scorers={"says_yes": says_yes, "broken": broken}, progress=False)
    assert run["c1"].passed
    assert not run["c2"].passed and "boom" in run["c2"].assertions[0].detail
    run = await ev.run_suite(s, respond("no"), scorers={"says_yes": says_yes, "broken": broken}, progress=False)
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
    for t in ASSERTION_TYPES:
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
        ({"cases": [case({"type": "equals", "value": "x"})], "target": "os:system"}, "looks like an import path"),
        ({"cases": [case({"type": "equals", "value": "x"})], "target": "a b"}, "not a registered name"),
        (
            {"cases": [case({"type": "equals", "value": "x"})], "judge": {"factory": "evil.module:judge"}},
            "judge 'evil.module:judge' looks like an import path",
        ),
        ({"cases": [case({"type": "equals", "value": "x"})], "colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_invalid_suites_raise_suite_error(bad, message):
    with pytest.raises(ev.SuiteError, match=message.replace("(", r"\(")):
        suite_from_dict(bad)


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
    assert s.target == "demo_agent" and s.cases[1].critical
    assert s.tags == ("basic", "math", "safety", "tool_use")
    j = ev.load_suite(DATA / "cases.jsonl")
    assert j.name == "cases" and [c.tags for c in j.cases] == [("basic",), ("math",)]
    ag2_suite = j.to_ag2()
    assert isinstance(ag2_suite, Suite) and [t.inputs["input"] for t in ag2_suite] == [
        "Hello!",
        "What is 2 + 2?",
    ]
    demo = ev.load_suite(demo_suite_path())
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
    s = ev.load_suite(demo_suite_path())
    assert {c.id for c in s.select(tags=["code"]).cases} == {"code.reverse", "code.factorial", "code.sql"}
    assert [c.id for c in s.select(ids=["math.sqrt"]).cases] == ["math.sqrt"]
    with pytest.raises(ev.UnknownKeyError, match="valid tags"):
        s.select(tags=["cod"])


def test_a_suite_file_naming_an_import_path_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.yaml"
    p.write_text(
        "target: os:system\n"
        f"target_options: {{command: 'touch {marker}'}}\n"
        "cases:\n  - {id: a, prompt: hi, assert: [{type: contains_any, values: [hi]}]}\n"
    )
    with pytest.raises(ev.SuiteError) as err:
        ev.load_suite(p)
    msg = str(err.value)
    assert "target 'os:system' looks like an import path" in msg and "register_target" in msg
    assert "--agent" in msg and not marker.exists()


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: EvalCase(id="x", prompt="p"), "at least one assertion or graded"),
        (lambda: EvalCase(id="x y", prompt="p", graded=True), "case id 'x y'"),
        (lambda: Regex(pattern="("), "invalid regex"),
        (lambda: ContainsAny(values=[]), "values"),
        (lambda: MaxTokens(value=-1), "value"),
        (lambda: JsonValid(schema={"type": "nope"}), "invalid JSON schema"),
        (lambda: JudgeSettings(thresholds={"overal": 5}), "unknown rubric dimension"),
        (lambda: JudgeSettings(factory="os:system"), "looks like an import path"),
        (lambda: SuiteDefaults(timeout_s=0), "timeout_s"),
        (lambda: EvalSuite(cases=[]), "cases"),
        (
            lambda: EvalSuite(cases=[{"id": "a", "prompt": "p", "assert": [{"type": "regex", "pattern": "("}]}]),
            "cases.0.assert.0.regex: invalid regex",
        ),
        (lambda: EvalSuite(target="os:system", cases=[{"id": "a", "prompt": "p", "graded": True}]), "target"),
    ],
)
def test_specs_built_in_code_raise_config_error_naming_the_field(build, field):
    with pytest.raises(ConfigError, match=re.escape(field)) as err:
        build()
    assert not isinstance(err.value, ValidationError)


def test_assertions_built_in_code_need_no_type_and_check_output():
    assert Regex(pattern=r"\d+").check(Observed("order 42")).detail == "matched '42'"
    assert ContainsAny(values=["paris"]).label == "contains_any[paris]"
    assert EvalCase(id="x", prompt="p", assertions=[Regex(pattern="x")]).assertions[0].type == "regex"


def test_with_thresholds_overrides_suite_thresholds_and_validates():
    s = ev.load_suite(DATA / "small.yaml").with_thresholds({"overall": 7})
    assert s.thresholds_for(s.cases[1]) == {"overall": 7.0}
    with pytest.raises(ev.UnknownKeyError, match="overal"):
        s.with_thresholds({"overal": 7})


def test_a_mistake_repeated_over_many_cases_is_reported_once_per_case_up_to_a_limit():
    cases = [{"id": f"c{i}", "prompt": "p", "assert": [{"type": "equals", "vaule": "x"}]} for i in range(50)]
    with pytest.raises(ev.SuiteError) as err:
        suite_from_dict({"cases": cases})
    lines = str(err.value).splitlines()
    assert len(lines) == 1 + 20 + 1 and lines[-1].strip() == "... and 80 more problem(s) like these"


def test_assertions_may_be_given_as_a_tuple_in_code():
    c = EvalCase(id="x", prompt="p", assertions=(Regex(pattern="x"), ContainsAny(values=["y"])))
    assert [a.type for a in c.assertions] == ["regex", "contains_any"]


def test_the_package_face_is_small_and_every_exception_is_in_the_agentops_tree():
    import importlib
    import inspect
    import pkgutil

    import agentops.evals
    from agentops.errors import AgentOpsError

    assert len(ev.__all__) <= 20 and all(hasattr(ev, n) for n in ev.__all__)
    raised = []
    for info in pkgutil.iter_modules(agentops.evals.__path__):
        module = importlib.import_module(f"agentops.evals.{info.name}")
        defined = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
        raised += [c for c in defined if issubclass(c, BaseException)]
    assert len(raised) == 5 and all(issubclass(c, AgentOpsError) for c in raised), raised


def test_every_assertion_label_names_its_type_and_argument():
    import agentops.evals.assertions as a

    labels = [
        (a.Equals(value="Paris"), "equals[Paris]"),
        (a.ContainsAll(values=["a", "b"]), "contains_all[a,b]"),
        (a.NotContains(values=["x"]), "not_contains[x]"),
        (a.NotRegex(pattern=r"\d{3}"), r"not_regex[\d{3}]"),
        (a.JsonValid(), "json"),
        (a.JsonValid(schema={"type": "object"}), "json[schema]"),
        (a.ToolCalled(name="lookup", arguments={"id": 1}), 'tool_called[lookup({"id": 1})]'),
        (a.ToolNotCalled(name="*"), "tool_not_called[*]"),
        (a.MaxTokens(value=50, count="prompt"), "max_tokens[prompt≤50]"),
        (a.MaxLatency(value=2.5), "max_latency_s[2.5]"),
        (a.MaxCost(value=0.01), "max_cost_usd[0.01]"),
        (a.ScorerRef(name="exact"), "scorer[exact]"),
        (a.Equals(value="x" * 40), "equals[" + "x" * 29 + "…]"),
    ]
    assert [x.label for x, _ in labels] == [want for _, want in labels]


def test_with_latency_limit_moves_only_the_latency_checks():
    suite = ev.load_suite(demo_suite_path())
    relaxed = suite.with_latency_limit(600)
    labels = [a.label for a in relaxed.defaults.assertions]
    assert "max_latency_s[600]" in labels and "max_latency_s[10]" in [a.label for a in suite.defaults.assertions]
    assert [c.assertions for c in relaxed.cases] == [c.assertions for c in suite.cases]  # no case sets its own
    assert len(relaxed.defaults.assertions) == len(suite.defaults.assertions)
    for bad in (0, -1, True, "10"):
        with pytest.raises(ConfigError, match="latency limit must be a positive number"):
            suite.with_latency_limit(bad)
