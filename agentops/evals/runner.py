"""Running a suite: produce every case against the target, grade each one as soon as it is produced.

Production and grading overlap. ``ag2.eval``'s grading core (:func:`ag2.eval.evaluate_traces`) pulls
each case's trace from a source whose ``load()`` waits for that case to finish, so a case is checked
and judged while later cases are still running. ``ag2.eval.run_agent`` is not used because it only
accepts agents and wraps every task in its own OpenTelemetry tracer; here the trace is built from the
reply's own event history — the same :class:`ag2.eval.Trace` the ag2 scorers read.

Concurrency: one ``asyncio.Semaphore`` bounds the cases in flight and the judge's gradings. Results
are returned in suite order, whatever order cases finish in.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ag2
from ag2.eval import Feedback, Scorer, Task, Trace, evaluate_traces
from ag2.eval.sources import TraceRef
from ag2.events import ModelMessage, ModelResponse, ToolCallEvent, UsageEvent

from agentops import _ag2
from agentops.errors import ConfigError
from agentops.evals._usage import Spend, spend_of
from agentops.evals.assertions import AssertionResult, Observed, ScorerRef, _short
from agentops.evals.cases import EvalCase, EvalSuite
from agentops.evals.errors import EvalError, UnknownKeyError
from agentops.evals.judge import Judge, JudgeResult
from agentops.evals.results import CaseResult, EvalRun
from agentops.evals.targets import Target, TargetResponse, _arguments
from agentops.listeners import EVAL_CASE, Listener, notify

__all__ = ["run_case", "run_suite"]


@dataclass(frozen=True)
class _Produced:
    """What the target produced for one case (or how it failed)."""

    text: str
    events: tuple[Any, ...]
    tool_calls: tuple[tuple[str, Mapping[str, Any]], ...]
    spend: Spend | None
    latency_s: float
    error: BaseException | None = None

    def observed(self) -> Observed:
        s = self.spend
        return Observed(
            self.text,
            self.tool_calls,
            s.prompt_tokens if s else None,
            s.completion_tokens if s else None,
            self.latency_s,
            s.cost_usd if s else None,
            (s.note if s else "the target reported no token usage"),
        )


async def _call_target(target: Target, prompt: str) -> tuple[str, tuple[Any, ...], TargetResponse | None]:
    if isinstance(target, ag2.Agent):
        reply: Any = await target.ask(prompt)
    else:
        reply = target(prompt)
        if inspect.isawaitable(reply):
            reply = await reply
    if isinstance(reply, ag2.AgentReply):
        return reply.body or "", tuple(await reply.history.get_events()), None
    if isinstance(reply, TargetResponse):
        return reply.text, (), reply
    if isinstance(reply, str):
        return reply, (), None
    raise EvalError(
        f"target returned {type(reply).__name__}; it must return a str, an ag2 AgentReply or a TargetResponse"
    )


async def _produce(target: Target, case: EvalCase, timeout_s: float | None) -> _Produced:
    started = time.perf_counter()
    try:
        coro = _call_target(target, case.prompt)
        text, events, extra = await (asyncio.wait_for(coro, timeout_s) if timeout_s else coro)
    except Exception as exc:
        if isinstance(exc, asyncio.TimeoutError):
            exc = TimeoutError(f"case timed out after {timeout_s:g} s")
        return _Produced("", (), (), None, time.perf_counter() - started, exc)
    latency = time.perf_counter() - started
    if extra is not None:
        events = tuple(UsageEvent(u, model=m) for m, u in extra.usage.items())
        calls = tuple((n, dict(a)) for n, a in extra.tool_calls)
    else:
        calls = tuple((e.name, _arguments(e.arguments)) for e in events if isinstance(e, ToolCallEvent))
    spend = spend_of(e for e in events if isinstance(e, UsageEvent) and e.usage)
    if not any(isinstance(e, ModelResponse) for e in events):  # plain-text targets: let ag2 scorers see it
        events = (*events, ModelResponse(ModelMessage(text)))
    return _Produced(text, events, calls, spend, latency)


def _error_text(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {_short(msg[0], 160) if msg else ''}".rstrip(": ")


def _resolve_scorers(suite: EvalSuite, scorers: Mapping[str, Scorer] | None) -> dict[str, Scorer]:
    """The ``ag2.eval`` scorers the suite names (built-in ``no_tool_errors`` plus the caller's)."""
    from ag2.eval.scorers import no_tool_errors

    builtin = {"no_tool_errors": no_tool_errors}
    available: dict[str, Any] = {**builtin, **dict(scorers or {})}
    used = sorted({a.name for c in suite.cases for a in suite.assertions_for(c) if isinstance(a, ScorerRef)})
    unknown = [n for n in used if n not in available]
    if unknown:
        raise UnknownKeyError(f"unknown scorer name(s) {unknown}; valid: {sorted(available)} (pass scorers={{...}})")
    out = {}
    for n in used:
        s = available[n]
        s = s() if s is builtin.get(n) else s
        if not isinstance(s, Scorer):
            raise EvalError(f"scorer {n!r} must be an ag2.eval Scorer (use @ag2.eval.scorer), got {type(s).__name__}")
        out[n] = s
    return out


def _progress(total: int, desc: str, enabled: bool | None) -> Any:
    from tqdm import tqdm  # plain tqdm: writes to stderr only when enabled, no widget warnings

    if enabled is None:
        enabled = bool(getattr(sys.stderr, "isatty", lambda: False)()) and "ipykernel" not in sys.modules
    return tqdm(total=total, desc=desc, unit="case", disable=not enabled, leave=False, file=sys.stderr)


class _LiveTraceSource:
    """An ``ag2.eval`` ``TraceSource`` whose traces become available as their cases finish."""

    def __init__(self, name: str, futures: Mapping[str, asyncio.Future[_Produced]]) -> None:
        self._refs = [TraceRef(trace_id=f"{name}:{i}", task_id=i) for i in futures]
        self._futures = futures

    async def list(self) -> Any:
        for ref in self._refs:
            yield ref

    async def load(self, ref: TraceRef) -> Trace:
        out = await self._futures[str(ref.task_id)]
        return Trace(events=out.events, exception=out.error, duration_ms=int(out.latency_s * 1000))


def _feedback(res: CaseResult) -> list[Feedback]:
    """The run file's feedback for one case: ``case`` (with the full result), one per check, the judge."""
    fbs = [
        Feedback(
            "case", score=res.passed, value=res.status, comment="; ".join(res.failures) or None, detail=res.to_dict()
        )
    ]
    seen: dict[str, int] = {}
    for c in res.assertions:
        seen[c.type] = seen.get(c.type, 0) + 1
        fbs.append(
            Feedback(c.type if seen[c.type] == 1 else f"{c.type}#{seen[c.type]}", score=c.passed, comment=c.detail)
        )
    if res.judge is not None:
        fbs.append(Feedback("judge", score=res.judge.passed, comment=res.judge.error or res.judge.reasoning))
        fbs += [Feedback(f"judge.{d}", score=s) for d, s in res.judge.scores.items() if s is not None]
    return fbs


def _status(out: _Produced, checks: Sequence[AssertionResult], verdict: JudgeResult | None) -> str:
    if out.error is not None:
        return "error"
    if verdict is not None and verdict.error:
        return "judge_error"
    return "pass" if all(c.passed for c in checks) and (verdict is None or verdict.passed) else "fail"


class _SuiteRun:
    """One run of a suite: cases are produced under the semaphore and graded as soon as each finishes."""

    def __init__(
        self,
        suite: EvalSuite,
        target: Target,
        *,
        judge: Judge | None,
        scorers: Mapping[str, Scorer],
        concurrency: int,
        timeout_s: float | None,
        listeners: Sequence[Listener],
        progress: bool | None,
    ) -> None:
        self.suite, self.target, self.judge, self.scorers = suite, target, judge, scorers
        self.timeout_s, self.listeners, self.concurrency = timeout_s, listeners, concurrency
        self.sem = asyncio.Semaphore(concurrency)
        self.bar = _progress(len(suite.cases), f"eval {suite.name}", progress)
        self.cases = {c.id: c for c in suite.cases}
        loop = asyncio.get_running_loop()
        self.produced: dict[str, asyncio.Future[_Produced]] = {c.id: loop.create_future() for c in suite.cases}
        self.results: dict[str, CaseResult] = {}

    async def produce(self, case: EvalCase) -> None:
        async with self.sem:
            limit = case.timeout_s or self.suite.defaults.timeout_s or self.timeout_s
            out = await _produce(self.target, case, limit)
        self.produced[case.id].set_result(out)

    async def grade(self, task: Task, trace: Trace) -> list[Feedback]:
        """The scorer ``ag2.eval`` calls per case: assertions, then the judge; records the result."""
        case = self.cases[str(task.task_id)]
        out = self.produced[case.id].result()  # the trace was loaded, so the case is produced
        checks = [await self._check(a, out, task, trace) for a in self.suite.assertions_for(case)]
        verdict = None
        if case.graded and out.error is None and self.judge is not None:
            async with self.sem:
                verdict = await self.judge.grade(case, out.text, self.suite.thresholds_for(case))
        seen = out.observed()
        status = _status(out, checks, verdict)
        res = CaseResult(
            case_id=case.id,
            prompt=case.prompt,
            tags=tuple(case.tags),
            critical=case.critical,
            passed=status == "pass",
            status=status,
            output=out.text,
            assertions=tuple(checks),
            judge=verdict,
            prompt_tokens=seen.prompt_tokens,
            completion_tokens=seen.completion_tokens,
            cost_usd=seen.cost_usd,
            latency_s=out.latency_s,
            tool_calls=tuple(n for n, _ in out.tool_calls),
            error=_error_text(out.error) if out.error else None,
        )
        self.results[case.id] = res
        self.bar.update(1)
        notify(self.listeners, EVAL_CASE, {"case": case.id, "passed": res.passed, "tags": list(case.tags)})
        return _feedback(res)

    async def _check(self, a: Any, out: _Produced, task: Task, trace: Trace) -> AssertionResult:
        if not isinstance(a, ScorerRef):
            return a.check(out.observed())
        fbs = await self.scorers[a.name](
            inputs=task.inputs,
            outputs={"body": out.text, "content": out.text},
            reference_outputs=task.reference_outputs,
            trace=trace,
            task=task,
        )
        bools = [f.score for f in fbs if isinstance(f.score, bool)]
        ok = bool(bools) and all(bools)
        why = "; ".join(f.comment for f in fbs if f.comment) or ("pass" if ok else "no boolean feedback")
        return AssertionResult("scorer", a.label, ok, _short(why, 160))

    async def run(self, *, label: str | None, run_id: str | None, store_dir: str | Path | None) -> EvalRun:
        source = _LiveTraceSource(self.suite.name, self.produced)
        production = asyncio.ensure_future(asyncio.gather(*(self.produce(c) for c in self.suite.cases)))
        options = {
            "scorers": [Scorer(self.grade, key="case")],
            "suite": self.suite.to_ag2(),
            "concurrency": self.concurrency,
            "run_id": run_id,
            "label": label,
        }
        try:
            if store_dir:
                result = await evaluate_traces(source, store_dir=str(store_dir), **options)
            else:  # no file wanted: grade in memory (writing the run JSON costs as much as grading)
                result = await _ag2.grade_traces_in_memory(source, **options)
            await production
        finally:
            if not production.done():
                production.cancel()
            self.bar.close()
        missing = [c.id for c in self.suite.cases if c.id not in self.results]
        if missing:  # grading itself crashed for these (a bug in a custom scorer): surface, don't hide
            raise EvalError(f"grading failed for case(s) {missing}; see the log for the scorer's traceback")
        results = [self.results[c.id] for c in self.suite.cases]
        return EvalRun(result, results, suite_name=self.suite.name, label=label)


async def run_suite(
    suite: EvalSuite,
    target: Target,
    *,
    judge: Judge | None = None,
    concurrency: int = 8,
    scorers: Mapping[str, Scorer] | None = None,
    timeout_s: float | None = None,
    label: str | None = None,
    run_id: str | None = None,
    progress: bool | None = None,
    listeners: Sequence[Listener] = (),
    store_dir: str | Path | None = None,
) -> EvalRun:
    """Run every case of ``suite`` against ``target`` and grade it; returns an :class:`EvalRun`.

    Args:
        suite: the validated suite.
        target: an ``ag2.Agent`` or any ``async (prompt: str) -> str | AgentReply | TargetResponse``.
        judge: needed when the suite has graded cases (else :class:`EvalError` before anything runs).
        concurrency: at most this many cases (and judge gradings) in flight.
        scorers: extra ``ag2.eval`` scorers referenced by ``{type: scorer, name: ...}`` assertions.
        timeout_s: per-case timeout (a case's own ``timeout_s`` or the suite default wins).
        label: recorded on the run (e.g. ``"prompt-v2"``); shown in comparisons.
        run_id: the ag2 run id (default: random); used as the file name under ``store_dir``.
        progress: show a tqdm bar on stderr (default: only on an interactive terminal).
        listeners: called as ``listener("eval.case", {"case", "passed", "tags"})`` per graded case.
        store_dir: also save the ag2 run JSON there as ``<run_id>.json``.

    A case that raises, times out or gets a malformed judge verdict is recorded (status ``error`` /
    ``judge_error``), never raised. Results keep suite order.
    """
    if not isinstance(suite, EvalSuite):
        raise EvalError(f"suite must be an EvalSuite (use load_suite), got {type(suite).__name__}")
    if not (isinstance(target, ag2.Agent) or callable(target)):
        raise EvalError(f"target must be an ag2.Agent or an async callable, got {type(target).__name__}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be an int ≥ 1, got {concurrency!r}")
    if suite.graded_cases and judge is None:
        raise EvalError(
            f"cases {list(suite.graded_cases)} are graded but no judge was given; pass judge=Judge(config) "
            f"(offline: Judge(offline_judge()))"
        )
    run = _SuiteRun(
        suite,
        target,
        judge=judge,
        scorers=_resolve_scorers(suite, scorers),
        concurrency=concurrency,
        timeout_s=timeout_s,
        listeners=listeners,
        progress=progress,
    )
    return await run.run(label=label, run_id=run_id, store_dir=store_dir)


async def run_case(case: EvalCase | str, target: Target, suite: EvalSuite, **kwargs: Any) -> CaseResult:
    """Run one case (by object or id) of ``suite``; handy in a parametrised pytest test."""
    cid = case.id if isinstance(case, EvalCase) else case
    run = await run_suite(suite.select(ids=[cid]), target, **kwargs)
    return run.cases[0]
