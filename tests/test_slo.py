"""Tests for agentops.slo: SLO maths against hand-computed cases, alert rules, promtool check + test."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.errors import ConfigError, MissingDependencyError
from agentops.slo import (
    DEFAULT_BURN_WINDOWS,
    DEFAULT_SLOS,
    SLO,
    BurnWindow,
    EventAlert,
    PromtoolError,
    alert_rules,
    alert_timeline,
    burn_rates,
    evaluate,
    parse_duration,
    promtool_check,
    promtool_test,
    rules_yaml,
    runbook_url,
    sli_events,
    slo_table,
    write_rules,
)

DATA = Path(__file__).parent / "data" / "promtool"
AVAIL = SLO(name="availability", kind="availability", target=0.99, runbook="high_error_rate")


def turns(outcomes, *, every_s=60.0, latency=None, cost=None, agent="support"):
    """A DataFrame shaped like TraceStore.turns(): one turn per `every_s` seconds."""
    n = len(outcomes)
    return pd.DataFrame(
        {
            "time_s": [i * every_s for i in range(n)],
            "outcome": outcomes,
            "latency_s": latency if latency is not None else [1.0] * n,
            "cost_usd": cost if cost is not None else [0.0001] * n,
            "agent": [agent] * n,
        }
    )


# -- parsing and validation -------------------------------------------------------------------------


def test_parse_duration():
    assert [parse_duration(x) for x in ("30s", "5m", "1h", "3d", "1w")] == [30, 300, 3600, 259200, 604800]
    for bad in ("5", "1h30m", "0m", "-5m", "5y", ""):
        with pytest.raises(ConfigError, match="invalid duration"):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad-Name", "kind": "availability", "target": 0.99}, r"\[a-z\]"),
        ({"name": "x", "kind": "availability", "target": 1.0}, "target"),
        ({"name": "x", "kind": "availability", "target": 0.9, "threshold": 1.0}, "takes no threshold"),
        ({"name": "x", "kind": "latency", "target": 0.9, "threshold": 3.0}, "histogram bucket"),
        ({"name": "x", "kind": "cost", "target": 0.9}, "USD"),
        ({"name": "x", "kind": "availability", "target": 0.9, "window": "a month"}, "invalid duration"),
        ({"name": "x", "kind": "throughput", "target": 0.9}, "kind"),
    ],
)
def test_slo_validation_names_the_problem(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SLO(**kwargs)


def test_burn_window_short_must_be_a_twelfth_of_long():
    with pytest.raises(ConfigError, match="1/12"):
        BurnWindow(long="1h", short="10m", factor=14.4, severity="page")
    assert [(w.long_s, w.short_s, w.factor, w.severity) for w in DEFAULT_BURN_WINDOWS] == [
        (3600, 300, 14.4, "page"),
        (21600, 1800, 6.0, "page"),
        (259200, 21600, 1.0, "ticket"),
    ]


def test_objective_text_and_budget():
    lat = SLO(name="lat", kind="latency", target=0.95, threshold=5.0)
    assert lat.objective() == "95% of successful turns finish within 5 s over 30d"
    assert lat.error_budget == pytest.approx(0.05) and lat.window_s == 30 * 86400


# -- SLO maths against hand-computed cases ----------------------------------------------------------


def test_evaluate_hand_computed_availability():
    # 1000 turns, 5 failed, target 99 %: 10 failures allowed, half the budget left, burn rate 0.5
    frame = turns(["error" if i % 200 == 0 else "success" for i in range(1000)])
    r = evaluate(AVAIL, frame)
    assert (r.events, r.bad) == (1000, 5)
    assert r.sli == pytest.approx(0.995)
    assert r.allowed_bad == pytest.approx(10.0)
    assert r.budget_remaining == pytest.approx(0.5)
    assert r.burn_rate == pytest.approx(0.5)
    assert r.met is True


def test_evaluate_overspent_budget_goes_negative():
    # 100 turns, 3 failed: 1 allowed, budget remaining 1 - 3 = -2, burn rate 3
    frame = turns(["error"] * 3 + ["success"] * 97)
    r = evaluate(AVAIL, frame)
    assert (r.sli, r.budget_remaining, r.burn_rate, r.met) == (
        pytest.approx(0.97),
        pytest.approx(-2.0),
        pytest.approx(3.0),
        False,
    )


def test_evaluate_respects_the_window_and_now():
    # errors only in the first 10 minutes; a 30-minute window ending at minute 59 sees none of them
    frame = turns(["error"] * 10 + ["success"] * 50)
    r = evaluate(AVAIL, frame, window_s=1800)
    assert (r.events, r.bad) == (30, 0)
    r = evaluate(AVAIL, frame, now=9 * 60, window_s=1800)
    assert (r.events, r.bad, r.burn_rate) == (10, 10, pytest.approx(100.0))


def test_latency_and_cost_slis_count_events_over_threshold():
    lat = SLO(name="lat", kind="latency", target=0.9, threshold=5.0)
    frame = turns(["success"] * 8 + ["error"] * 2, latency=[1, 2, 5, 5.01, 9, 1, 1, 1, 30, 30])
    ev = sli_events(lat, frame)
    assert len(ev) == 8 and int((~ev["good"]).sum()) == 2  # 5.01 and 9 s; errors are not latency events
    cost = SLO(name="c", kind="cost", target=0.9, threshold=0.001)
    frame = turns(["success"] * 4, cost=[0.0005, 0.001, 0.0011, None])
    assert sli_events(cost, frame)["good"].tolist() == [True, True, False, True]


def test_agent_filter_and_empty_data():
    frame = pd.concat([turns(["error"] * 2, agent="a"), turns(["success"] * 2, agent="b")])
    only_b = SLO(name="b", kind="availability", target=0.9, agent="b")
    assert evaluate(only_b, frame).bad == 0
    empty = evaluate(AVAIL, turns([]))
    assert (empty.events, empty.sli, empty.budget_remaining, empty.met) == (0, None, None, None)


@settings(max_examples=80, deadline=None)
@given(outcomes=st.lists(st.booleans(), min_size=1, max_size=300), target=st.floats(0.5, 0.999))
def test_budget_remaining_is_one_minus_burn_rate(outcomes, target):
    slo = SLO(name="s", kind="availability", target=target)
    r = evaluate(slo, turns(["success" if ok else "error" for ok in outcomes]))
    assert 0.0 <= r.sli <= 1.0
    assert r.budget_remaining == pytest.approx(1.0 - r.burn_rate)
    assert r.met == (r.bad <= r.allowed_bad + 1e-9)
    assert r.met == (r.budget_remaining >= -1e-6) or abs(r.budget_remaining) < 1e-6


def test_burn_rates_over_trailing_windows():
    # one turn a minute; minutes 0-59 fine, 60-69 all errors
    frame = turns(["success"] * 60 + ["error"] * 10)
    br = burn_rates(AVAIL, frame, windows=("5m", "1h"), step="1m")
    at = br.set_index("time_s")
    # at minute 64 the 5m window (59, 64] holds minutes 60..64: 5 of 5 bad -> ratio 1 -> burn 100
    assert at.loc[64 * 60, "5m"] == pytest.approx(100.0)
    # the 1h window (4, 64] holds 60 turns, 5 bad -> ratio 1/12 -> burn 8.333
    assert at.loc[64 * 60, "1h"] == pytest.approx(100 / 12)
    assert at.loc[30 * 60, "1h"] == 0.0


def test_alert_timeline_fires_when_both_windows_burn():
    # one turn per minute for 3 hours; minutes 60-99 fail 50 %
    outcomes = ["error" if 60 <= i < 100 and i % 2 == 0 else "success" for i in range(180)]
    tl = alert_timeline([AVAIL], turns(outcomes), event_alerts=())
    fast = tl[tl["alert"] == "AvailabilityErrorBudgetBurn1h"].iloc[0]
    # 1h ratio must exceed 14.4 %: 9 errors in the hour ending at minute 76 (60,62,...,76) -> 15 %
    assert fast["fired_at_s"] == 76 * 60
    # the 5m window is clean from minute 103 on (last error at minute 98)
    assert fast["resolved_at_s"] == 103 * 60
    assert fast["severity"] == "page" and fast["runbook"] == "high_error_rate"
    assert fast["runbook_url"] == runbook_url("high_error_rate")
    assert fast["peak"] > 14.4
    assert set(tl["alert"]) == {
        "AvailabilityErrorBudgetBurn1h",
        "AvailabilityErrorBudgetBurn6h",
        "AvailabilityErrorBudgetBurn3d",
    }


def test_alert_timeline_event_alerts_from_store_events():
    class Store:
        def turns(self):
            return turns(["success"] * 60)

        def llm_calls(self):
            return turns(["success"] * 60)

        def events(self):
            times = [20 * 60 + 20 * i for i in range(15)]  # 15 findings between minute 20 and 24.7
            return pd.DataFrame({"event": ["guardrail.finding"] * 15, "time_s": times})

    alert = EventAlert(
        name="G",
        event="guardrail.finding",
        metric="agentops_guardrail_findings_total",
        window="10m",
        threshold=10,
        runbook="guardrail_spike",
        summary="s",
    )
    tl = alert_timeline(DEFAULT_SLOS, Store(), event_alerts=[alert])
    g = tl[tl["alert"] == "G"].iloc[0]
    # the 11th finding lands at 20m + 200 s = 23m20s; the next evaluation minute is 24
    assert g["fired_at_s"] == 24 * 60 and g["peak"] == 15
    # at 31m the window (21m, 31m] still holds 11 findings (21m20s..24m40s); at 32m only 8 remain
    assert g["resolved_at_s"] == 32 * 60


def test_slo_table_has_one_row_per_slo():
    class Store:
        def turns(self):
            return turns(["success"] * 99 + ["error"], cost=[0.0001] * 100)

        def llm_calls(self):
            return turns(["success"] * 100)

    table = slo_table(DEFAULT_SLOS, Store())
    assert list(table.index) == [s.name for s in DEFAULT_SLOS]
    assert table.loc["availability", "budget_remaining"] == pytest.approx(0.0)
    assert table.loc["model_errors", "bad"] == 0 and bool(table.loc["cost", "met"]) is True


# -- Prometheus rules -------------------------------------------------------------------------------


def test_alert_rules_follow_the_multiwindow_scheme():
    rules = alert_rules()
    (group,) = rules["groups"]
    rec = [r for r in group["rules"] if "record" in r]
    alerts = [r for r in group["rules"] if "alert" in r]
    assert group["rules"] == rec + alerts  # recorded before they are read
    assert len(rec) == len(DEFAULT_SLOS) * 5  # 5m, 30m, 1h, 6h, 3d
    by_name = {a["alert"]: a for a in alerts}
    fast = by_name["AvailabilityErrorBudgetBurn1h"]
    assert fast["expr"] == (
        'agentops_slo:error_ratio:rate1h{slo="availability"} > 0.144 and '
        'agentops_slo:error_ratio:rate5m{slo="availability"} > 0.144'
    )
    assert fast["labels"] == {
        "severity": "page",
        "slo": "availability",
        "long_window": "1h",
        "short_window": "5m",
    }
    assert by_name["LatencyErrorBudgetBurn6h"]["expr"].endswith('rate30m{slo="latency"} > 0.3')
    assert by_name["CostErrorBudgetBurn3d"]["labels"]["severity"] == "ticket"
    for a in alerts:
        assert a["annotations"]["runbook_url"].startswith("https://runbooks.example.com/agentops/")
    latency = next(r for r in rec if r["labels"] == {"slo": "latency"} and r["record"].endswith("rate5m"))
    assert 'le="5.0"' in latency["expr"] and 'outcome="success"' in latency["expr"]
    cost = next(r for r in rec if r["labels"] == {"slo": "cost"} and r["record"].endswith("rate1h"))
    assert 'agentops_request_cost_usd_bucket{le="0.001"}[1h]' in cost["expr"]


def test_alert_rules_reject_duplicates_and_missing_runbooks():
    with pytest.raises(ConfigError, match="unique"):
        alert_rules([AVAIL, AVAIL])
    with pytest.raises(ConfigError, match="no runbook"):
        alert_rules([SLO(name="x", kind="availability", target=0.9)])


def test_agent_scoped_slo_adds_a_matcher():
    slo = SLO(name="router", kind="error_rate", target=0.99, agent="router", runbook="high_error_rate")
    rec = alert_rules([slo], event_alerts=())["groups"][0]["rules"][0]
    assert rec["expr"] == (
        'sum(rate(ag2_llm_calls_total{outcome="error",agent="router"}[5m])) / '
        'sum(rate(ag2_llm_calls_total{agent="router"}[5m]))'
    )


def test_write_rules_writes_parseable_yaml(tmp_path):
    path = write_rules(tmp_path / "sub" / "rules.yml")
    assert yaml.safe_load(path.read_text()) == alert_rules()
    assert rules_yaml() == path.read_text()
    assert not list(tmp_path.rglob("*.tmp"))


# -- promtool ---------------------------------------------------------------------------------------


@pytest.fixture()
def promtool_available():
    if shutil.which("promtool") is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: install Debian's `prometheus` package (make system-deps)")
        pytest.skip("promtool not installed (apt-get install prometheus)")


@pytest.mark.promtool
def test_promtool_checks_generated_rules(tmp_path, promtool_available):
    path = write_rules(tmp_path / "rules.yml")
    out = promtool_check(path)
    assert "SUCCESS" in out and "34 rules found" in out


@pytest.mark.promtool
def test_promtool_unit_tests_the_generated_alerts(tmp_path, promtool_available):
    write_rules(tmp_path / "rules.yml")
    shutil.copy(DATA / "slo_alerts_test.yml", tmp_path / "slo_alerts_test.yml")
    assert "SUCCESS" in promtool_test(tmp_path / "slo_alerts_test.yml")


@pytest.mark.promtool
def test_promtool_failure_is_a_clear_error(tmp_path, promtool_available):
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: x\n  rules:\n  - alert: A\n    expr: sum(rate(x[5m]) >\n")
    with pytest.raises(PromtoolError, match="check rules failed"):
        promtool_check(bad)


def test_missing_promtool_is_a_dependency_error(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install prometheus"):
        promtool_check(tmp_path / "rules.yml")


def test_thresholds_are_exact_products():
    rules = [r for r in alert_rules()["groups"][0]["rules"] if "alert" in r]
    limits = {r["alert"]: float(r["expr"].split(" > ")[1].split(" ")[0]) for r in rules if "Burn" in r["alert"]}
    assert limits["ModelErrorsErrorBudgetBurn1h"] == pytest.approx(14.4 * 0.02)
    assert limits["CostErrorBudgetBurn6h"] == pytest.approx(6 * 0.01)
    assert all(math.isfinite(v) for v in limits.values())
