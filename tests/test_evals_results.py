"""Tests for agentops.evals.results, reports and gate: frames, strict keys, saved runs, comparisons, the gate."""

from __future__ import annotations

import asyncio
import json

import pytest
from ag2.eval import RunResult, Suite
from ag2.eval import load_run as ag2_load_run
from ag2.events import Usage
from evals_support import DATA, case, respond, suite_of
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops import evals as ev
from agentops.errors import AgentOpsError, ConfigError
from agentops.evals.cases import RUBRIC
from agentops.evals.demo import demo_agent, demo_suite_path
from agentops.evals.reports import score_histogram
from agentops.evals.results import CaseResult
from agentops.models import OfflineModel, rule
from agentops.usage import UnpricedModelWarning

# ------------------------------------------------------------------------------------------------
# Results, reports, strict keys
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    s = ev.load_suite(demo_suite_path())
    judge = ev.Judge(ev.offline_judge())

    async def both():
        base = await ev.run_suite(s, demo_agent("baseline"), judge=judge, concurrency=4, label="v1", progress=False)
        bad = await ev.run_suite(s, demo_agent("regressed"), judge=judge, concurrency=4, label="v2", progress=False)
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
    with pytest.raises(ev.UnknownKeyError, match=r"unknown scorer key 'tool_caled'; valid keys: \[.*'tool_called'"):
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
    assert list(jf.columns[:6]) == list(RUBRIC) and len(jf) == 6
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


def make_run(outcomes: dict[str, bool], critical: set[str] = frozenset(), prompts: dict | None = None) -> ev.EvalRun:
    result = RunResult(
        run_id="r", tasks=(), suite=Suite(()), target_path="t", concurrency=1, duration_ms=0, created_at=""
    )
    cases = [
        CaseResult(
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
    result = await ev.run_case(c, demo_agent(), SMALL, judge=ev.Judge(ev.offline_judge()))
    assert result.passed, result.explain()


# ------------------------------------------------------------------------------------------------
# What a real provider can produce: unpriced models, a judge that never scored
# ------------------------------------------------------------------------------------------------


async def run_with_all_judge_errors() -> ev.EvalRun:
    m = OfflineModel("offline-1")
    m.add_rule(rule("mute judge", "I think it is fine.", system_contains="impartial evaluation judge"), first=True)
    s = suite_of(
        {"id": "g1", "prompt": "p", "graded": True},
        {"id": "g2", "prompt": "q", "graded": True},
        judge={"thresholds": {"overall": 5}},
    )
    return await ev.run_suite(s, respond("x"), judge=ev.Judge(m), progress=False)


async def test_frames_reports_and_histogram_survive_a_judge_that_never_scored():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = await run_with_all_judge_errors()
    assert run.totals()["judge_errors"] == 2
    jf = run.judge_frame()
    assert jf["overall"].isna().all() and jf["overall"].dtype == float
    assert run.frame()["judge_overall"].dtype == float
    fig, ax = plt.subplots()
    score_histogram({"baseline": run, "v2": run}, ax)
    assert [t.get_text() for t in ax.texts] == ["no judge scores\n(every verdict was a judge error)"]
    assert ax.get_title() == "Judge overall score (graded cases)"
    plt.close(fig)
    assert "| g1 | judge_error |" in run.to_markdown()


def test_histogram_counts_unscored_cases_in_the_legend(demo_runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base, bad = demo_runs
    fig, ax = plt.subplots()
    score_histogram({"baseline": base, "prompt-v2": bad}, ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["baseline", "prompt-v2"]
    heights = sum(p.get_height() for p in ax.patches)
    assert heights == len(base.judge_frame()) + len(bad.judge_frame())
    with pytest.raises(ev.UnknownKeyError, match="overal"):
        score_histogram({"b": base}, ax, dimension="overal")
    plt.close(fig)


async def test_unpriced_cases_are_reported_as_unpriced_not_as_zero():
    usage = {"no-price-model-r": Usage(prompt_tokens=3, completion_tokens=2)}
    s = suite_of(case({"type": "equals", "value": "x"}), case({"type": "equals", "value": "x"}, id="c2"))
    with pytest.warns(UnpricedModelWarning):
        run = await ev.run_suite(s, respond("x", usage=usage), progress=False)
    t = run.totals()
    assert (t["tokens"], t["cost_usd"], t["unpriced"]) == (10, 0.0, 2)
    assert run.frame()["cost_usd"].isna().all()
    md = run.to_markdown()
    assert "cost $0.0000 (2 case(s) unpriced)" in md and "| c1 | pass |  |  | 5 | unpriced |" in md
    assert "2 case(s) unpriced" in run.to_html()
    loaded = CaseResult.from_dict(run.cases[0].to_dict())
    assert loaded.cost_usd is None and loaded.total_tokens == 5
