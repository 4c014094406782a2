"""Results: per-case :class:`CaseResult`, the graded :class:`EvalRun`, saved runs and comparisons.

A run is stored as ``ag2.eval``'s own schema-0.2 run JSON (``ag2.eval.load_run`` reads it too); each
case's full result rides in the detail of its ``case`` feedback, so :func:`load_run` rebuilds every
:class:`CaseResult` exactly. Lookups are strict: an unknown case id, tag or feedback key raises
:class:`UnknownKeyError` naming the valid ones (``ag2.eval``'s ``pass_rate("typo")`` returns ``0.0``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ag2.eval import RunResult
from ag2.eval import load_run as _ag2_load_run

from agentops.errors import ConfigError
from agentops.evals.assertions import AssertionResult
from agentops.evals.cases import RUBRIC
from agentops.evals.errors import EvalError, UnknownKeyError
from agentops.evals.judge import JudgeResult

__all__ = ["CaseResult", "EvalRun", "RunComparison", "compare", "load_run"]


@dataclass(frozen=True)
class CaseResult:
    """Everything one case produced and how it was graded."""

    case_id: str
    prompt: str
    tags: tuple[str, ...]
    critical: bool
    passed: bool
    status: str  # "pass", "fail", "error" (target raised), "judge_error"
    output: str
    assertions: tuple[AssertionResult, ...]
    judge: JudgeResult | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_s: float
    tool_calls: tuple[str, ...]
    error: str | None = None

    @property
    def total_tokens(self) -> int | None:
        """Prompt + completion tokens (``None`` when the target reported no usage)."""
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens

    @property
    def failures(self) -> tuple[str, ...]:
        """Why the case failed, one line per reason (empty when it passed)."""
        out = [f"{a.label}: {a.detail}" for a in self.assertions if not a.passed]
        if self.error:
            out.insert(0, f"error: {self.error}")
        if self.judge is not None and not self.judge.passed:
            out.append(f"judge: {self.judge.error or ', '.join(self.judge.failed)}")
        return tuple(out)

    def explain(self) -> str:
        """A one-paragraph account for test failure messages."""
        head = f"case {self.case_id!r} {self.status.upper()}"
        return head if self.passed else head + " — " + "; ".join(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored as the detail of the run's ``case`` feedback)."""
        return {
            "case_id": self.case_id,
            "prompt": self.prompt,
            "tags": list(self.tags),
            "critical": self.critical,
            "passed": self.passed,
            "status": self.status,
            "output": self.output,
            "assertions": [a.to_dict() for a in self.assertions],
            "judge": self.judge.to_dict() if self.judge else None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            "tool_calls": list(self.tool_calls),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CaseResult:
        """Rebuild from :meth:`to_dict` output (a loaded baseline)."""
        judge = JudgeResult.from_dict(d["judge"]) if d.get("judge") else None
        return cls(
            case_id=d["case_id"],
            prompt=d.get("prompt", ""),
            tags=tuple(d.get("tags", ())),
            critical=bool(d.get("critical")),
            passed=bool(d.get("passed")),
            status=d.get("status", "fail"),
            output=d.get("output", ""),
            assertions=tuple(AssertionResult(**a) for a in d.get("assertions", ())),
            judge=judge,
            prompt_tokens=d.get("prompt_tokens"),
            completion_tokens=d.get("completion_tokens"),
            cost_usd=d.get("cost_usd"),
            latency_s=float(d.get("latency_s", 0.0)),
            tool_calls=tuple(d.get("tool_calls", ())),
            error=d.get("error"),
        )


class EvalRun:
    """The graded run: per-case :class:`CaseResult` over the ``ag2.eval.RunResult`` it wraps."""

    def __init__(self, result: RunResult, cases: Sequence[CaseResult], *, suite_name: str, label: str | None) -> None:
        self.result = result
        self.cases = tuple(cases)
        self.suite_name = suite_name
        self.label = label
        self._by_id = {c.case_id: c for c in self.cases}

    def __repr__(self) -> str:
        return (
            f"EvalRun(suite={self.suite_name!r}, label={self.label!r}, cases={len(self.cases)}, "
            f"pass_rate={self.pass_rate():.3f})"
        )

    def __getitem__(self, case_id: str) -> CaseResult:
        try:
            return self._by_id[case_id]
        except KeyError:
            raise UnknownKeyError(f"no case {case_id!r} in this run; cases: {sorted(self._by_id)}") from None

    def select(self, ids: Iterable[str]) -> EvalRun:
        """The same run restricted to the given case ids (unknown ones are ignored), e.g. a tag subset."""
        keep = set(ids)
        return EvalRun(
            self.result,
            [c for c in self.cases if c.case_id in keep],
            suite_name=self.suite_name,
            label=self.label,
        )

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag in the run, sorted."""
        return tuple(sorted({t for c in self.cases for t in c.tags}))

    @property
    def keys(self) -> tuple[str, ...]:
        """Every feedback key in the run (``case``, assertion types, ``judge``, ``judge.<dim>``)."""
        return tuple(sorted({fb.key for tr in self.result.tasks for fb in tr.feedback}))

    def _check_tag(self, tag: str | None) -> None:
        if tag is not None and tag not in self.tags:
            raise UnknownKeyError(f"unknown tag {tag!r}; valid tags: {list(self.tags)}")

    def pass_rate(self, key: str | None = None, *, tag: str | None = None) -> float:
        """Share of cases passing (``key=None``) or of a feedback key's boolean checks.

        Unlike ``ag2.eval.RunResult.pass_rate``, an unknown key or tag raises
        :class:`UnknownKeyError` naming the valid ones instead of returning ``0.0``.
        """
        self._check_tag(tag)
        if key is None:
            cases = [c for c in self.cases if tag is None or tag in c.tags]
            return sum(c.passed for c in cases) / len(cases) if cases else 0.0
        if key not in self.keys:
            raise UnknownKeyError(f"unknown scorer key {key!r}; valid keys: {list(self.keys)}")
        if key.startswith("judge."):
            raise UnknownKeyError(f"{key!r} is a numeric score, not pass/fail; use score_stats({key!r})")
        return self.result.pass_rate(key, tag=tag)

    def score_stats(self, key: str, *, tag: str | None = None) -> Any:
        """``ag2.eval.ScoreStats`` (mean, p50, p95, n) for a numeric key such as ``judge.overall``."""
        self._check_tag(tag)
        numeric = sorted({k for k in self.keys if k.startswith("judge.")})
        if key not in numeric:
            raise UnknownKeyError(f"unknown numeric key {key!r}; valid: {numeric}")
        return self.result.score_stats(key, tag=tag)

    @property
    def critical_failures(self) -> tuple[str, ...]:
        """Ids of critical cases that did not pass."""
        return tuple(c.case_id for c in self.cases if c.critical and not c.passed)

    def frame(self) -> Any:
        """One row per case: status, checks, judge overall, tokens, cost (USD), latency (s), failures."""
        import pandas as pd

        rows = []
        for c in self.cases:
            rows.append(
                {
                    "case": c.case_id,
                    "tags": ", ".join(c.tags),
                    "critical": c.critical,
                    "passed": c.passed,
                    "status": c.status,
                    "checks": f"{sum(a.passed for a in c.assertions)}/{len(c.assertions)}",
                    "judge_overall": (c.judge.scores.get("overall") if c.judge else None),
                    "tokens": c.total_tokens,
                    "cost_usd": c.cost_usd,
                    "latency_s": c.latency_s,
                    "tool_calls": ", ".join(c.tool_calls),
                    "failures": "; ".join(c.failures),
                }
            )
        frame = pd.DataFrame(rows).set_index("case")
        return frame.astype({"judge_overall": float, "cost_usd": float})  # None → NaN, never object

    def judge_frame(self) -> Any:
        """One row per graded case, one column per rubric dimension (plus judge status)."""
        import pandas as pd

        rows = []
        for c in self.cases:
            if c.judge is None:
                continue
            rows.append(
                {
                    "case": c.case_id,
                    **dict(c.judge.scores),
                    "judge_passed": c.judge.passed,
                    "judge_error": c.judge.error,
                }
            )
        frame = pd.DataFrame(rows, columns=["case", *RUBRIC, "judge_passed", "judge_error"]).set_index("case")
        return frame.astype(dict.fromkeys(RUBRIC, float))  # all-None scores are NaN, so plots never crash

    def pass_rate_by_tag(self) -> Any:
        """Cases, passed and pass rate per tag (a case with several tags counts in each)."""
        import pandas as pd

        rows = []
        for t in self.tags:
            cs = [c for c in self.cases if t in c.tags]
            rows.append(
                {
                    "tag": t,
                    "cases": len(cs),
                    "passed": sum(c.passed for c in cs),
                    "pass_rate": sum(c.passed for c in cs) / len(cs),
                }
            )
        return pd.DataFrame(rows, columns=["tag", "cases", "passed", "pass_rate"]).set_index("tag")

    def totals(self) -> dict[str, Any]:
        """Run-level numbers: cases, passed, pass rate, tokens, cost (USD), errors, judge errors.

        ``cost_usd`` sums the priced cases; ``unpriced`` counts cases that used tokens on a model with
        no known price (their cost is unknown, not zero).
        """
        costs = [c.cost_usd for c in self.cases if c.cost_usd is not None]
        return {
            "cases": len(self.cases),
            "passed": sum(c.passed for c in self.cases),
            "pass_rate": self.pass_rate(),
            "tokens": sum(c.total_tokens or 0 for c in self.cases),
            "cost_usd": sum(costs),
            "unpriced": sum(c.cost_usd is None and c.total_tokens is not None for c in self.cases),
            "errors": sum(c.status == "error" for c in self.cases),
            "judge_errors": sum(c.status == "judge_error" for c in self.cases),
            "critical_failures": len(self.critical_failures),
        }

    def to_markdown(self, *, max_output: int = 60) -> str:
        """A markdown report: totals, pass rate by tag, and one row per case with its failures."""
        from agentops.evals.reports import to_markdown

        return to_markdown(self, max_output=max_output)

    def to_html(self) -> str:
        """A standalone HTML report with the same content as :meth:`to_markdown`."""
        from agentops.evals.reports import to_html

        return to_html(self)

    def save(self, path: str | Path) -> Path:
        """Write the run as ag2's schema-0.2 run JSON (read by :func:`load_run` and ``ag2.eval.load_run``).

        Written to a temporary file then renamed, so a crash never leaves a half-written baseline.
        """
        target = Path(path)
        if target.suffix != ".json":
            raise ConfigError(f"baseline path {str(target)!r} must end in .json")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            written = self.result.save(Path(tmp) / target.name)
            written.replace(target)
        return target


def load_run(path: str | Path) -> EvalRun:
    """Load a run saved with :meth:`EvalRun.save` (ag2 run JSON) for comparison or gating.

    Raises:
        EvalError: the file is missing, not a run file, or was not written by :func:`run_suite`.
    """
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"baseline {str(p)!r} not found; create one with --save-baseline (or EvalRun.save)")
    try:
        result = _ag2_load_run(p)
    except (ValueError, KeyError, TypeError) as exc:
        raise EvalError(f"{p} is not an ag2 eval run file: {exc}") from None
    cases = []
    for tr in result.tasks:
        fb = next((f for f in tr.feedback if f.key == "case" and f.detail), None)
        if fb is None:
            raise EvalError(f"{p}: task {tr.task.task_id!r} has no 'case' feedback; was it saved by agentops.evals?")
        try:
            cases.append(CaseResult.from_dict(fb.detail))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise EvalError(f"{p}: task {tr.task.task_id!r} holds no valid case result ({exc!r})") from None
    if not cases:
        raise EvalError(f"{p} holds no cases")
    return EvalRun(result, cases, suite_name=result.suite.name, label=result.label)


@dataclass(frozen=True)
class RunComparison:
    """Per-case changes between a baseline run and a current run (model A vs B, prompt v1 vs v2)."""

    baseline: EvalRun
    current: EvalRun
    regressed: tuple[str, ...]
    fixed: tuple[str, ...]
    only_in_baseline: tuple[str, ...]
    only_in_current: tuple[str, ...]
    changed_prompt: tuple[str, ...]

    @property
    def shared(self) -> tuple[str, ...]:
        """Case ids present in both runs with the same prompt, in current order."""
        base = self.baseline._by_id
        return tuple(
            c.case_id for c in self.current.cases if c.case_id in base and c.case_id not in self.changed_prompt
        )

    def frame(self) -> Any:
        """One row per shared case: status before/after, change, judge overall and cost deltas."""
        import pandas as pd

        rows = []
        for cid in self.shared:
            b, c = self.baseline[cid], self.current[cid]
            change = "regressed" if cid in self.regressed else ("fixed" if cid in self.fixed else "same")
            bo = b.judge.scores.get("overall") if b.judge else None
            co = c.judge.scores.get("overall") if c.judge else None
            rows.append(
                {
                    "case": cid,
                    "critical": c.critical,
                    "baseline": b.status,
                    "current": c.status,
                    "change": change,
                    "judge_overall_delta": (co - bo) if (co is not None and bo is not None) else None,
                    "tokens_delta": ((c.total_tokens or 0) - (b.total_tokens or 0)),
                    "cost_delta_usd": ((c.cost_usd or 0.0) - (b.cost_usd or 0.0)),
                }
            )
        return pd.DataFrame(rows).set_index("case")

    def summary(self) -> str:
        """A short text summary (deterministic: no ids, no timestamps)."""
        b, c = self.baseline, self.current
        name_b, name_c = b.label or "baseline", c.label or "current"
        lines = [
            f"{name_b} → {name_c}: pass rate {b.pass_rate():.1%} → {c.pass_rate():.1%} "
            f"over {len(self.shared)} shared case(s)"
        ]
        lines.append(f"  regressed: {list(self.regressed) or 'none'}")
        lines.append(f"  fixed:     {list(self.fixed) or 'none'}")
        for name, ids in (
            ("only in baseline", self.only_in_baseline),
            ("only in current", self.only_in_current),
            ("prompt changed", self.changed_prompt),
        ):
            if ids:
                lines.append(f"  {name}: {list(ids)}")
        return "\n".join(lines)


def compare(baseline: EvalRun, current: EvalRun) -> RunComparison:
    """Line two runs up by case id; cases whose prompt changed are reported, not compared."""
    base, cur = baseline._by_id, current._by_id
    changed = tuple(cid for cid in cur if cid in base and base[cid].prompt != cur[cid].prompt)
    shared = [c.case_id for c in current.cases if c.case_id in base and c.case_id not in changed]
    return RunComparison(
        baseline=baseline,
        current=current,
        regressed=tuple(i for i in shared if base[i].passed and not cur[i].passed),
        fixed=tuple(i for i in shared if not base[i].passed and cur[i].passed),
        only_in_baseline=tuple(c.case_id for c in baseline.cases if c.case_id not in cur),
        only_in_current=tuple(c.case_id for c in current.cases if c.case_id not in base),
        changed_prompt=changed,
    )
