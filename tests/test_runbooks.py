"""Tests for agentops.runbooks: runbooks as data, markdown, alert links, and the incident drill."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from agentops.errors import ConfigError
from agentops.runbooks import (
    DEFAULT_DRILL,
    DrillPhase,
    Runbook,
    check_links,
    get_runbook,
    load_runbooks,
    lookup_order,
    render_markdown,
    run_drill,
    write_markdown,
)
from agentops.slo import DEFAULT_SLOS, SLO, alert_rules

REQUIRED = {"high_error_rate", "high_latency", "cost_spike", "guardrail_spike"}


def test_shipped_runbooks_cover_the_required_incidents():
    books = load_runbooks()
    assert set(books) >= REQUIRED
    for book in books.values():
        assert book.symptoms and book.diagnosis and book.remediation and book.escalation and book.rollback


def test_every_generated_alert_links_a_runbook_that_lists_it():
    links = check_links(alert_rules())
    assert set(links.values()) == REQUIRED
    books = load_runbooks()
    for alert, rid in links.items():
        assert alert in books[rid].alerts, f"{alert} links {rid} but the runbook does not list it"
    listed = {a for b in books.values() for a in b.alerts}
    assert listed == set(links)


def test_check_links_rejects_missing_and_unknown_runbooks():
    rules = alert_rules()
    first_alert = next(r for r in rules["groups"][0]["rules"] if "alert" in r)
    first_alert["annotations"]["runbook_url"] = "https://runbooks.example.com/agentops/nope"
    with pytest.raises(ConfigError, match="no known runbook"):
        check_links(rules)
    del first_alert["annotations"]["runbook_url"]
    with pytest.raises(ConfigError, match="no runbook_url"):
        check_links(rules)


def test_markdown_rendering():
    book = get_runbook("cost_spike")
    md = book.to_markdown(base_url="https://rb.example.com")
    assert md.startswith("# Cost spike")
    for heading in ("## Symptoms", "## Diagnosis", "## Remediation", "## Escalation path", "## Rollback"):
        assert heading in md
    assert f"1. {book.diagnosis[0]}" in md and "https://rb.example.com/cost_spike" in md
    assert "`CostErrorBudgetBurn1h`" in md
    everything = render_markdown()
    assert everything.count('<a id="') == len(load_runbooks()) and "- [High latency" in everything


def test_write_markdown_one_file_per_runbook(tmp_path):
    paths = write_markdown(tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{r}.md" for r in load_runbooks())
    assert (tmp_path / "high_latency.md").read_text().startswith("# High latency")


def test_load_custom_runbooks_and_errors(tmp_path):
    good = tmp_path / "rb.yaml"
    entry = {
        "id": "disk_full",
        "title": "Disk full",
        "severity": "ticket",
        "summary": "s",
        "symptoms": ["a"],
        "diagnosis": ["b"],
        "remediation": ["c"],
        "escalation": ["d"],
        "rollback": "e",
    }
    good.write_text(yaml.safe_dump({"runbooks": [entry]}))
    assert list(load_runbooks(good)) == ["disk_full"]
    dup = tmp_path / "dup.yaml"
    dup.write_text(yaml.safe_dump({"runbooks": [entry, entry]}))
    with pytest.raises(ConfigError, match="duplicate runbook ids"):
        load_runbooks(dup)
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"runbooks": [{**entry, "diagnosis": []}]}))
    with pytest.raises(ConfigError, match="diagnosis"):
        load_runbooks(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("runbooks: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_runbooks(broken)
    with pytest.raises(ConfigError, match="not found"):
        load_runbooks(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="known: cost_spike"):
        get_runbook("nope")
    with pytest.raises(ConfigError, match="id"):
        Runbook(**{**entry, "id": "Disk Full"})


def test_drill_phase_validation():
    with pytest.raises(ConfigError, match="after start"):
        DrillPhase(kind="error_burst", start="10m", end="5m")
    with pytest.raises(ConfigError, match="probability"):
        DrillPhase(kind="error_burst", start="1m", end="5m", intensity=2)
    assert DrillPhase(kind="latency_spike", start="1m", end="2m").level == 8.0
    assert lookup_order("1234") == lookup_order("1234")


async def test_drill_rejects_overlapping_phases_and_unknown_runbooks():
    with pytest.raises(ConfigError, match="overlap"):
        await run_drill(
            [
                DrillPhase(kind="error_burst", start="10m", end="30m"),
                DrillPhase(kind="cost_spike", start="20m", end="40m"),
            ]
        )
    with pytest.raises(ConfigError, match="no runbook 'nope'"):
        await run_drill([], slos=[SLO(name="a", kind="availability", target=0.9, runbook="nope")], duration="1m")


def test_drill_requests_read_as_benign_to_the_guardrail():
    """The drill runs behind GuardrailMiddleware: a request it flags as an injection is blocked before the
    model, so its latency and cost never reach the traces. When the learned classifier flagged 66 of the
    540 support questions, the latency-spike phase stopped paging; a classifier that does so again fails
    here, by name, instead of moving the drill's alerts."""
    import random

    from agentops.guardrails import GuardrailPolicy, detect_injection
    from agentops.runbooks import _drill_request, _phase_at

    threshold = GuardrailPolicy().injection_threshold
    rng = random.Random(0)
    requests = [_drill_request(rng, i, _phase_at(DEFAULT_DRILL, i * 30.0)) for i in range(540)]
    flagged = [r for r in requests if detect_injection(r, threshold).flagged]
    assert flagged == []


@pytest.fixture(scope="module")
def drill():
    """One default drill shared by the tests below (run in its own event loop)."""
    return asyncio.run(run_drill(seed=0))


async def test_drill_detects_every_phase_and_links_its_runbook(drill):
    assert drill.requests == 540 and 0 < drill.failed < 100
    det = drill.detection().set_index("phase")
    expected = {
        "error_burst": "high_error_rate",
        "latency_spike": "high_latency",
        "cost_spike": "cost_spike",
        "guardrail_spike": "guardrail_spike",
    }
    for phase, runbook in expected.items():
        assert det.loc[phase, "runbook"] == runbook, det
        assert 0 <= det.loc[phase, "paged_after_min"] <= (det.loc[phase, "end_min"] - det.loc[phase, "start_min"])
    fired = drill.fired()
    assert fired["runbook_title"].notna().all()
    assert set(fired["runbook"]) == REQUIRED
    # nothing pages during the quiet first hour
    assert (drill.timeline["fired_at_s"] >= 60 * 60).all()


async def test_drill_traces_show_the_injected_faults(drill):
    turns = drill.store.turns()
    assert len(turns) == 540 and turns["time_s"].tolist() == sorted(turns["time_s"])
    minute = turns["time_s"] / 60
    burst = turns[(minute >= 60) & (minute < 90)]
    calm = turns[minute < 60]
    assert (burst["outcome"] == "error").mean() > 0.3 > (calm["outcome"] == "error").mean()
    spike = turns[(minute >= 120) & (minute < 170) & (turns["outcome"] == "success")]
    assert spike["latency_s"].median() > 5.0 > calm["latency_s"].median()
    ok = turns["outcome"] == "success"
    costly = turns[(minute >= 190) & (minute < 220) & ok]
    assert len(costly) > 50
    assert (costly["cost_usd"] > 0.001).all() and (calm["cost_usd"] < 0.001).all()
    assert set(
        drill.store.llm_calls().loc[lambda f: (f["time_s"] >= 190 * 60) & (f["time_s"] < 220 * 60), "model"]
    ) == {"offline-large"}
    events = drill.store.events()
    assert set(events["event"]) == {"guardrail.finding", "exception"}  # exceptions: the failed calls
    findings = events[events["event"] == "guardrail.finding"]
    assert len(findings) == 40  # 20 requests, each with an email and an API key
    assert {a["entity_type"] for a in findings["attributes"]} == {"EMAIL_ADDRESS", "SECRET"}
    assert {(a["where"], a["action"]) for a in findings["attributes"]} == {("input", "redact")}
    assert set(findings["span"]) == {"invoke_agent support"}  # on the turn that carried the PII
    assert ((findings["time_s"] >= 240 * 60) & (findings["time_s"] < 250 * 60)).all()
    assert "jane.doe" not in str(drill.store.records())


async def test_drill_is_deterministic(drill):
    again = await run_drill(seed=0)
    cols = ["alert", "severity", "fired_at_s", "resolved_at_s", "runbook"]
    assert again.timeline[cols].equals(drill.timeline[cols])
    assert again.to_markdown() == drill.to_markdown()


async def test_drill_report_markdown(drill):
    md = drill.to_markdown()
    assert md.startswith("# Incident drill") and "540 requests over 270 simulated minutes" in md
    for phase in DEFAULT_DRILL:
        assert f"| {phase.kind} |" in md


async def test_quiet_drill_raises_no_alert():
    result = await run_drill([], duration="60m", slos=DEFAULT_SLOS, baseline_error_rate=0.0)
    assert result.timeline.empty and result.failed == 0
    assert result.detection().empty


def test_detection_marks_phases_without_alerts_explicitly(drill):
    import dataclasses

    from agentops.runbooks import NO_ALERT

    quiet = dataclasses.replace(drill, timeline=drill.timeline.iloc[0:0])
    det = quiet.detection()
    assert (det["first_page"] == NO_ALERT).all() and (det["first_ticket"] == NO_ALERT).all()
    assert det["paged_after_min"].isna().all()
    assert "| no page |" in quiet.to_markdown()
