"""The regression gate: may this run replace the baseline? For CI, from pytest or the command line.

:func:`gate` compares two runs case by case; :func:`assert_gate` and :func:`pytest_cases` put it in a
team's test suite; ``python -m agentops eval SUITE --baseline FILE`` (:mod:`agentops.evals.cli`) in a
CI step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agentops.errors import ConfigError
from agentops.evals.assertions import _short
from agentops.evals.cases import EvalSuite, load_suite
from agentops.evals.errors import RegressionError
from agentops.evals.results import EvalRun, compare, load_run

__all__ = ["GateResult", "assert_gate", "gate", "pytest_cases"]


@dataclass(frozen=True)
class GateResult:
    """The gate's decision; ``message`` lists the regressed cases (critical ones marked)."""

    passed: bool
    baseline_pass_rate: float
    current_pass_rate: float
    tolerance: float
    regressed: tuple[str, ...]
    critical_regressed: tuple[str, ...]
    missing_critical: tuple[str, ...]
    fixed: tuple[str, ...]
    reasons: tuple[str, ...]
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def raise_for_regressions(self) -> GateResult:
        """Raise :class:`RegressionError` (an ``AssertionError``) with :attr:`message` if the gate failed."""
        if not self.passed:
            raise RegressionError(self.message)
        return self


def gate(current: EvalRun, baseline: EvalRun, *, tolerance: float = 0.0) -> GateResult:
    """Decide whether ``current`` may replace ``baseline``.

    Fails when the pass rate over the shared cases drops by more than ``tolerance`` (a fraction,
    0.05 = five points), when any critical case that passed in the baseline fails now, or when a
    critical baseline case is missing from the current run. Non-critical regressions within the
    tolerance are listed but do not fail the gate.

    Example::

        result = gate(run, load_run("evals/baseline.json"), tolerance=0.02)
        print(result.message)          # the regressed cases, critical ones marked
        result.raise_for_regressions() # RegressionError (an AssertionError) when it failed
    """
    if not 0.0 <= tolerance <= 1.0:
        raise ConfigError(f"tolerance must be a fraction in [0, 1], got {tolerance!r}")
    cmp = compare(baseline, current)
    shared = cmp.shared
    base_rate = sum(baseline[i].passed for i in shared) / len(shared) if shared else 0.0
    cur_rate = sum(current[i].passed for i in shared) / len(shared) if shared else 0.0
    critical = tuple(i for i in cmp.regressed if current[i].critical or baseline[i].critical)
    missing_critical = tuple(i for i in cmp.only_in_baseline if baseline[i].critical)
    reasons = []
    if not shared:
        reasons.append("no case is shared with the baseline (different suite?)")
    if base_rate - cur_rate > tolerance + 1e-12:
        reasons.append(
            f"pass rate dropped {base_rate:.1%} → {cur_rate:.1%} "
            f"(-{(base_rate - cur_rate) * 100:.1f} points, tolerance {tolerance * 100:.1f})"
        )
    if critical:
        reasons.append(f"critical case(s) regressed: {list(critical)}")
    if missing_critical:
        reasons.append(f"critical case(s) missing from the current run: {list(missing_critical)}")
    result = GateResult(
        passed=not reasons,
        baseline_pass_rate=base_rate,
        current_pass_rate=cur_rate,
        tolerance=tolerance,
        regressed=cmp.regressed,
        critical_regressed=critical,
        missing_critical=missing_critical,
        fixed=cmp.fixed,
        reasons=tuple(reasons),
        message="",
    )
    return replace(result, message=_message(result, current, len(shared)))


def _message(result: GateResult, current: EvalRun, shared: int) -> str:
    lines = [
        f"regression gate {'PASSED' if result.passed else 'FAILED'}: pass rate "
        f"{result.baseline_pass_rate:.1%} → {result.current_pass_rate:.1%} over {shared} case(s) "
        f"(tolerance {result.tolerance * 100:.1f} points)"
    ]
    lines += [f"  ✗ {r}" for r in result.reasons]
    if result.regressed:
        lines.append("  regressed cases:")
        for i in result.regressed:
            mark = " [critical]" if i in result.critical_regressed else ""
            why = "; ".join(current[i].failures) or current[i].status
            lines.append(f"    - {i}{mark}: {_short(why, 140)}")
    if result.fixed:
        lines.append(f"  fixed: {list(result.fixed)}")
    return "\n".join(lines)


def assert_gate(current: EvalRun, baseline: EvalRun | str | Path, *, tolerance: float = 0.0) -> GateResult:
    """Pytest helper: gate ``current`` against a baseline (run or path); raises :class:`RegressionError`.

    Example (in a team's test suite)::

        async def test_support_bot_has_not_regressed():
            run = await run_suite(load_suite("evals/support.yaml"), build_agent(), judge=Judge(cfg))
            assert_gate(run, "evals/baseline.json", tolerance=0.02)
    """
    base = baseline if isinstance(baseline, EvalRun) else load_run(baseline)
    return gate(current, base, tolerance=tolerance).raise_for_regressions()


def pytest_cases(suite: EvalSuite | str | Path) -> list[Any]:
    """One ``pytest.param`` per case (its id is the case id) for ``@pytest.mark.parametrize``.

    Example::

        SUITE = load_suite("evals/support.yaml")

        @pytest.mark.parametrize("case", pytest_cases(SUITE))
        async def test_case(case):
            result = await run_case(case, build_agent(), SUITE, judge=Judge(cfg))
            assert result.passed, result.explain()
    """
    import pytest

    s = suite if isinstance(suite, EvalSuite) else load_suite(suite)
    return [pytest.param(c, id=c.id) for c in s.cases]
