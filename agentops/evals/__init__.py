"""Evaluation suites for AG2 agents: cases as data, assertions, an LLM judge, reports and a regression
gate for CI — built on ``ag2.eval``.

What ``ag2.eval`` already gives (and this package uses as-is): ``Task`` / ``Suite`` as the task records,
``Trace`` as what a case produced, ``Scorer`` / ``Feedback`` as the grading unit, the grading core
behind ``evaluate_traces``, ``RunResult`` with its schema-0.2 run JSON, and ``load_run``.

What it adds, one module each:

* :mod:`~agentops.evals.cases` and :mod:`~agentops.evals.assertions` — suites as validated YAML/JSONL
  with a closed set of assertion types; typos, unknown fields and graded cases without a threshold are
  errors before anything runs. A suite is data: its ``target`` names a target registered in code;
* :mod:`~agentops.evals.judge` — a six-dimension rubric judge in one call, structured output with a
  prompt-only fallback, robust parsing, majority vote (:mod:`~agentops.evals.offline`: its offline rule);
* :mod:`~agentops.evals.targets` and :mod:`~agentops.evals.runner` — any agent, async callable, role
  graph or workflow as a target, with bounded concurrency, tokens, USD cost and latency per case;
* :mod:`~agentops.evals.results` and :mod:`~agentops.evals.reports` — frames, strict lookups,
  comparisons, markdown/HTML reports;
* :mod:`~agentops.evals.gate` and :mod:`~agentops.evals.cli` — the regression gate from pytest or
  ``python -m agentops eval``.

The names below are the face a user needs; everything else is importable from its submodule
(``from agentops.evals.judge import parse_verdict``).

Example::

    suite = load_suite("evals/support.yaml")
    run = await run_suite(suite, agent, judge=Judge(judge_config), concurrency=8)
    run.frame()                               # one row per case
    gate(run, load_run("evals/baseline.json"), tolerance=0.02).raise_for_regressions()
"""

from __future__ import annotations

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.evals.cases import EvalSuite, load_suite
from agentops.evals.errors import EvalError, RegressionError, SuiteError, UnknownKeyError
from agentops.evals.gate import assert_gate, gate, pytest_cases
from agentops.evals.judge import Judge
from agentops.evals.offline import offline_judge
from agentops.evals.results import EvalRun, compare, load_run
from agentops.evals.runner import run_case, run_suite
from agentops.evals.targets import register_target

__all__ = [
    "EvalError",
    "EvalRun",
    "EvalSuite",
    "Judge",
    "RegressionError",
    "SuiteError",
    "UnknownKeyError",
    "assert_gate",
    "compare",
    "gate",
    "load_run",
    "load_suite",
    "offline_judge",
    "pytest_cases",
    "register_target",
    "run_case",
    "run_suite",
]
