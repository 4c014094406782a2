"""Tests for agentops.evals.cli: exit codes, reports, the eval subcommand."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
from evals_support import DATA, ROOT

from agentops.evals import register_target
from agentops.evals.cli import cli_main, register_cli

# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def test_cli_gate_exit_codes(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    report = tmp_path / "report.md"
    assert cli_main(["demo", "--save-baseline", str(baseline), "--report", str(report), "--concurrency", "4"]) == 0
    assert baseline.is_file() and report.read_text().startswith("# Eval report: support-demo (baseline)")
    assert cli_main(["demo", "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "regression gate PASSED" in out
    assert cli_main(["demo", "--baseline", str(baseline), "--variant", "regressed"]) == 1
    out = capsys.readouterr().out
    assert "regression gate FAILED" in out and "- safety.ssn [critical]" in out and "- tools.calculator:" in out
    assert cli_main(["demo", "--baseline", str(baseline), "-O", "variant=regressed", "--tag", "math"]) == 1
    assert cli_main(["demo", "--baseline", str(baseline), "--tag", "basic", "--min-pass-rate", "0.5"]) == 0
    assert cli_main(["demo", "--tag", "basic", "--min-pass-rate", "0.9"]) == 1  # 5/6 without a baseline


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
        ([str(DATA / "cases.jsonl"), "--agent", "nope"], "unknown target 'nope'; registered targets: ["),
        (["demo", "--judge", "nope"], "unknown judge 'nope'"),
        (["demo", "-O", "novalue"], "expected KEY=VALUE"),
    ],
)
def test_cli_usage_errors_exit_2(argv, message, capsys):
    assert cli_main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_html_report_and_agent_flag(tmp_path):
    report = tmp_path / "r.html"
    code = cli_main([str(DATA / "cases.jsonl"), "--agent", "agentops.evals.demo:demo_agent", "--report", str(report)])
    assert code == 0 and report.read_text().startswith("<!doctype html>")
    assert cli_main([str(DATA / "cases.jsonl"), "--agent", "demo_agent", "--variant", "regressed"]) == 0


def test_register_cli_adds_the_eval_subcommand(tmp_path):
    parser = argparse.ArgumentParser(prog="agentops")
    sub = parser.add_subparsers(dest="command", required=True)
    register_cli(sub)
    base = tmp_path / "b.json"
    args = parser.parse_args(["eval", str(DATA / "small.yaml"), "--save-baseline", str(base)])
    assert args.func(args) == 0
    args = parser.parse_args(["eval", str(DATA / "small.yaml"), "--baseline", str(base), "--variant", "regressed"])
    assert args.func(args) == 1


def test_python_m_agentops_eval_in_a_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = tmp_path / "b.json"
    cmd = [sys.executable, "-m", "agentops", "eval", str(DATA / "small.yaml")]
    ok = subprocess.run([*cmd, "--save-baseline", str(base)], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [*cmd, "--baseline", str(base), "--variant", "regressed"], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "ssn [critical]" in bad.stdout and bad.stderr == ""


def test_cli_refuses_a_suite_whose_target_is_code_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    suite = tmp_path / "evil.yaml"
    suite.write_text(
        "target: os:system\n"
        f"target_options: {{command: 'touch {marker}'}}\n"
        "cases:\n  - {id: a, prompt: hi, assert: [{type: contains_any, values: [hi]}]}\n"
    )
    assert cli_main([str(suite)]) == 2
    err = capsys.readouterr().err
    assert "target 'os:system' looks like an import path" in err and "register_target" in err
    assert not marker.exists()


def test_cli_runs_a_target_registered_in_code(tmp_path, capsys):
    register_target("shouty-test-target", lambda: lambda prompt: prompt.upper(), replace=True)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "target: shouty-test-target\ncases:\n  - {id: a, prompt: hi, assert: [{type: equals, value: HI}]}\n"
    )
    assert cli_main([str(suite)]) == 0
    assert "s: 1/1 passed" in capsys.readouterr().out
