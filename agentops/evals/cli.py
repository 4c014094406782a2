"""``python -m agentops eval``: run a suite, write a report, save or gate against a baseline.

Exit codes: 0 passed, 1 regression (or below ``--min-pass-rate``), 2 usage error (bad suite, unknown
target, missing baseline). The suite names its target by a registered name (``target: demo_agent``);
``--agent`` may also give ``module:factory``, because whoever types the command runs that code.

>>> cli_main(["demo", "--tag", "math", "--min-pass-rate", "1"])
support-demo: 4/4 passed (100.0%), cost $0.0003, errors 0, judge errors 0
0
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentops.errors import AgentOpsError, ConfigError
from agentops.evals.assertions import _short
from agentops.evals.cases import EvalSuite, load_suite
from agentops.evals.errors import EvalError
from agentops.evals.gate import gate
from agentops.evals.judge import Judge
from agentops.evals.results import EvalRun, load_run
from agentops.evals.runner import run_suite
from agentops.evals.targets import build_judge, build_target

__all__ = ["cli_main", "register_cli"]


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    import yaml

    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="suite file (.yaml/.yml/.jsonl); 'demo' runs the chapter's demo suite")
    p.add_argument("--baseline", metavar="FILE", help="gate against this saved run (JSON); exit 1 on regression")
    p.add_argument("--save-baseline", metavar="FILE", help="save this run as a baseline (JSON)")
    p.add_argument(
        "--agent",
        metavar="NAME|MODULE:FACTORY",
        help="target to evaluate: a registered name or an import path (overrides the suite's 'target')",
    )
    p.add_argument(
        "-O",
        "--target-option",
        action="append",
        type=_parse_option,
        default=[],
        metavar="KEY=VALUE",
        help="option passed to the target factory (repeatable), e.g. -O variant=regressed",
    )
    p.add_argument("--variant", help="shorthand for -O variant=VALUE")
    p.add_argument(
        "--judge",
        metavar="NAME|MODULE:FACTORY",
        help="judge factory (default: the suite's judge.factory, else the offline judge)",
    )
    p.add_argument("--concurrency", type=int, default=8, help="cases in flight (default 8)")
    p.add_argument("--tolerance", type=float, default=0.0, help="allowed pass-rate drop as a fraction (default 0)")
    p.add_argument("--timeout", type=float, default=None, help="per-case timeout in seconds")
    p.add_argument("--tag", action="append", default=[], help="only run cases with this tag (repeatable)")
    p.add_argument("--report", metavar="FILE", help="write a report (.md or .html)")
    p.add_argument("--label", help="label recorded on the run")
    p.add_argument("--min-pass-rate", type=float, default=None, help="without a baseline: fail below this rate")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar on stderr")


def register_cli(subparsers: Any) -> None:
    """Add the ``eval`` subcommand to an argparse ``subparsers`` object (sets ``func`` → exit code)."""
    p = subparsers.add_parser(
        "eval",
        help="run an eval suite and gate it against a baseline",
        description="Run an eval suite against an agent; with --baseline, exit 1 when quality regressed.",
    )
    _add_arguments(p)
    p.set_defaults(func=_cli_handler)


def cli_main(argv: Sequence[str] | None = None) -> int:
    """Run ``eval`` as a standalone command: ``cli_main(["suite.yaml", "--baseline", "b.json"])``.

    Returns 0 (passed), 1 (regression / gate failure) or 2 (usage error).
    """
    parser = argparse.ArgumentParser(prog="agentops eval")
    _add_arguments(parser)
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    return _cli_handler(args)


def _cli_handler(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_cli(args))
    except (AgentOpsError, argparse.ArgumentTypeError) as exc:
        print(f"agentops eval: error: {exc}", file=sys.stderr)
        return 2


def _demo_suite() -> Path:
    from agentops.evals.demo import demo_suite_path

    return demo_suite_path()


def _target_and_judge(args: argparse.Namespace, suite: EvalSuite) -> tuple[Any, Judge | None, dict[str, Any]]:
    """Build what the suite (data: registered names only) or the command line (code) names."""
    spec = args.agent or suite.target
    if not spec:
        raise EvalError("no target: add 'target: <registered name>' to the suite or pass --agent NAME|module:factory")
    options = dict(suite.target_options) if not args.agent else {}
    options.update(dict(args.target_option))
    if args.variant:
        options["variant"] = args.variant
    target = build_target(spec, allow_import=bool(args.agent), **options)
    judge = None
    if suite.graded_cases:
        jspec = args.judge or suite.judge.factory or "offline_judge"
        made = build_judge(jspec, allow_import=bool(args.judge), **(suite.judge.options if not args.judge else {}))
        judge = made if isinstance(made, Judge) else Judge(made)
    return target, judge, options


def _print_summary(run: EvalRun) -> None:
    t = run.totals()
    unpriced = f" ({t['unpriced']} unpriced)" if t["unpriced"] else ""
    print(
        f"{run.suite_name}: {t['passed']}/{t['cases']} passed ({t['pass_rate']:.1%}), "
        f"cost ${t['cost_usd']:.4f}{unpriced}, errors {t['errors']}, judge errors {t['judge_errors']}"
    )
    for c in run.cases:
        if not c.passed:
            mark = " [critical]" if c.critical else ""
            print(f"  FAIL {c.case_id}{mark}: {_short('; '.join(c.failures), 140)}")


async def _cli(args: argparse.Namespace) -> int:
    suite = load_suite(_demo_suite() if args.suite == "demo" else args.suite)
    if args.tag:
        suite = suite.select(tags=args.tag)
    target, judge, options = _target_and_judge(args, suite)
    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be ≥ 1, got {args.concurrency}")
    baseline = load_run(args.baseline) if args.baseline else None  # fail fast, before running anything
    if baseline is not None and args.tag:  # gate only the selected cases
        baseline = baseline.select(c.id for c in suite.cases)
    run = await run_suite(
        suite,
        target,
        judge=judge,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        label=args.label or options.get("variant"),
        progress=args.progress,
    )
    _print_summary(run)
    if args.report:
        rp = Path(args.report)
        rp.parent.mkdir(parents=True, exist_ok=True)
        rp.write_text(run.to_html() if rp.suffix.lower() in (".html", ".htm") else run.to_markdown(), "utf-8")
    if args.save_baseline:
        run.save(args.save_baseline)
        print(f"baseline saved to {args.save_baseline}")
    if baseline is not None:
        result = gate(run, baseline, tolerance=args.tolerance)
        print(result.message)
        return 0 if result.passed else 1
    if args.min_pass_rate is not None and run.pass_rate() < args.min_pass_rate:
        print(f"pass rate {run.pass_rate():.1%} is below --min-pass-rate {args.min_pass_rate:.1%}")
        return 1
    return 0
