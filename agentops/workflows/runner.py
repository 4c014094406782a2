"""The workflow runner: each stage one ``ag2.Agent`` turn, with timeouts, retries, gates and escalation.

Stages run in dependency order; the stages of one ``parallel_groups`` entry whose dependencies are met
run concurrently (one asyncio task each), everything else one at a time, so runs are repeatable.
Approval stages are asked before their batch starts; the escalation engine is checked after each
stage of a batch.

Retries are **call-level**: each stage agent carries a :class:`~agentops.resilience.RetryPolicy`
(AG2's ``RetryMiddleware`` underneath) that repeats one failed *model call* — a timeout of the
attempt (the stage's ``timeout_s``), a provider error, an empty or malformed answer —
with backoff, and only what :func:`agentops.errors.is_retryable` allows (never a refusal or a
configuration error). The turn itself is never repeated, so a tool the model already called does not
run again; every turn also carries ``variables={"idempotency_key": "<run_id>:<stage>"}`` so tools
guarded by :meth:`agentops.resilience.IdempotencyLedger.once` stay at-most-once even when an
escalation re-runs the stage. A stage record's ``attempts`` is one per turn plus its retries.

Concurrency: one template may be run by several concurrent ``run_workflow`` calls; each run keeps its
own state.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ag2

from agentops import _identity  # noqa: F401
from agentops.errors import TimeLimitExceeded
from agentops.escalation import Action, ApprovalRequest, Approver, EscalationEngine, RunContext, request_approval
from agentops.listeners import APPROVAL, STAGE, Listener, notify
from agentops.resilience.retries import AttemptTimeout, RetryPolicy
from agentops.stack import MiddlewareSpec, extra_middleware
from agentops.usage import UsageMeter
from agentops.workflows.results import StageRecord, WorkflowRun
from agentops.workflows.template import Stage, WorkflowError, WorkflowTemplate

__all__ = ["run_workflow"]

_run_counter = itertools.count(1)
_APPROVAL_LABELS = {"approved": "approved", "rejected": "rejected", "timeout": "timed out"}


def _model_for(stage: Stage, models: Any) -> Any:
    if not isinstance(models, Mapping):
        return models
    for key in (stage.model, stage.name, "default"):
        if key and key in models:
            return models[key]
    raise WorkflowError(
        f"no model for stage {stage.name!r}: add {stage.model or stage.name!r} or 'default' to models "
        f"(have {sorted(models)})"
    )


def _prompt(request: str, stage: Stage, outputs: Mapping[str, str]) -> str:
    parts = [f"Request: {request}"]
    for d in stage.depends_on:
        parts.append(f"## Output of {d}\n{outputs.get(d, '')}")
    return "\n\n".join(parts)


_TIMED_OUT: Any = object()
_MAX_BACKOFF_S = 30.0


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _turn_limit(timeout_s: float, retries: int, backoff_s: float) -> float:
    """A stage turn's wall-clock limit: every attempt at its limit plus every backoff window, plus 1 s."""
    waits = sum(min(min(backoff_s, _MAX_BACKOFF_S) * 2**n, _MAX_BACKOFF_S) for n in range(retries))
    return timeout_s * (retries + 1) + waits + 1.0


async def _within(awaitable: Any, timeout_s: float) -> Any:
    """Await for at most ``timeout_s``; :data:`_TIMED_OUT` when the limit passed.

    Unlike ``asyncio.wait_for``, an error raised by the awaitable itself — even a ``TimeoutError``
    such as a provider's — propagates unchanged, so a provider timeout is never reported as the
    stage's own time limit.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return task.result() if done else _TIMED_OUT


def _too_slow(stage: str, limit_s: float, during: str) -> TimeLimitExceeded:
    """The error a stage's time limit raises: names the stage, the limit and how to raise it."""
    fix = "the stage's timeout_s (or the template's default_timeout_s, e.g. template.replace(default_timeout_s=300))"
    return TimeLimitExceeded(f"stage {stage!r}", limit_s, fix, during)


@dataclass(frozen=True)
class _Inputs:
    """Everything one run was asked to do, validated by :func:`run_workflow`."""

    template: WorkflowTemplate
    request: str
    params: dict[str, str]
    approver: Approver | None
    engine: EscalationEngine | None
    listeners: tuple[Listener, ...]
    run_id: str
    rate_limit: Callable[[], tuple[int, int]] | None
    middleware: MiddlewareSpec | None
    tools: Mapping[str, tuple[Any, ...]]


@dataclass(frozen=True)
class _Totals:
    tokens: int
    cost_usd: float  # priced calls only
    calls: int
    errors: int
    unpriced_calls: int
    malformed: int


def _totals(meters: Sequence[UsageMeter]) -> _Totals:
    return _Totals(
        sum(m.tokens for m in meters),
        sum(m.cost_usd for m in meters),
        sum(m.calls for m in meters),
        sum(m.errors for m in meters),
        sum(m.unpriced_calls for m in meters),
        sum(m.malformed_calls for m in meters),
    )


class _Runner:
    def __init__(self, inputs: _Inputs, models: Any) -> None:
        self.i = inputs
        self.t = inputs.template
        self.records = {s.name: StageRecord(s.name, self.t.group_of(s.name)) for s in self.t.stages}
        self.meters: dict[str, list[UsageMeter]] = {s.name: [] for s in self.t.stages}
        self.outputs: dict[str, str] = {}
        self.stage_models: dict[str, Any] = {s.name: _model_for(s, models) for s in self.t.stages}
        self.timed_out: dict[str, bool] = {}
        self.last_elapsed: dict[str, float] = {}
        self.failures: dict[str, BaseException] = {}
        self.reason = ""
        self.t0 = 0.0

    def _now(self) -> float:
        """Seconds since the run started, on the event loop's clock (the clock its timeouts use)."""
        return asyncio.get_running_loop().time() - self.t0

    def _run_totals(self) -> _Totals:
        return _totals([m for ms in self.meters.values() for m in ms])

    def _settle(self, name: str) -> None:
        rec, totals = self.records[name], _totals(self.meters[name])
        rec.tokens = totals.tokens
        rec.cost_usd = None if totals.unpriced_calls else totals.cost_usd

    # -- one stage -----------------------------------------------------------------------------
    def _policy(self, stage: Stage) -> RetryPolicy:
        """Call-level retries for one stage turn: each model call retried, never the turn."""
        timeout, retries = self.t.timeout_for(stage), self.t.retries_for(stage)
        return RetryPolicy(
            max_attempts=retries + 1,
            base_s=min(self.t.retry_backoff_s, _MAX_BACKOFF_S),
            max_backoff_s=_MAX_BACKOFF_S,
            attempt_timeout_s=min(timeout, 3600.0),
            allow_truncated=True,  # a stage's output is prose handed on; templates cap replies on purpose
            deadline_s=min(_turn_limit(timeout, retries, self.t.retry_backoff_s), 3600.0),
            listeners=self.i.listeners,
            clock=_loop_time,  # the clock the stage's timeouts use
            seed=zlib.crc32(f"{self.i.run_id}:{stage.name}".encode()),
        )

    async def _turn(self, stage: Stage, model: Any, instructions: str, prompt: str) -> str:
        """One ``ag2.Agent`` turn; ``attempts`` grows by one plus the call-level retries it made."""
        rec, policy = self.records[stage.name], self._policy(stage)
        meter = UsageMeter(getattr(model, "model", ""))
        self.meters[stage.name].append(meter)
        stack = [*extra_middleware(self.i.middleware, stage.name), policy, meter.middleware()]
        tools = self.i.tools.get(stage.name, ())
        agent = ag2.Agent(stage.name, instructions, config=model, middleware=stack, tools=list(tools))
        key = {"idempotency_key": f"{self.i.run_id}:{stage.name}"}
        limit = policy.settings.deadline_s
        try:
            reply = await _within(agent.ask(prompt, variables=key), limit)
        except AttemptTimeout as exc:
            self.timed_out[stage.name] = True
            attempts = f"on attempt {policy.total_retries + 1} of {policy.settings.max_attempts}"
            raise _too_slow(stage.name, policy.settings.attempt_timeout_s or limit, attempts) from exc
        finally:
            rec.attempts += 1 + policy.total_retries
        if reply is _TIMED_OUT:
            self.timed_out[stage.name] = True
            raise _too_slow(stage.name, limit, "for the whole turn (every attempt and wait)")
        self.timed_out[stage.name] = False
        return reply.body or ""

    async def _run_stage(self, stage: Stage) -> None:
        rec = self.records[stage.name]
        model = self.stage_models[stage.name]
        rec.model = getattr(model, "model", type(model).__name__)
        began = self._now()
        if rec.start_s is None:
            rec.start_s = began
        try:
            instructions = stage.instructions.format_map(self.i.params)
            output = await self._turn(stage, model, instructions, _prompt(self.i.request, stage, self.outputs))
        except Exception as exc:
            rec.status, rec.error = "failed", f"{type(exc).__name__}: {exc}"
            self.failures[stage.name] = exc
        else:
            rec.status, rec.output, rec.error = "completed", output, ""
            self.outputs[stage.name] = output
        rec.end_s = self._now()
        self.last_elapsed[stage.name] = rec.end_s - began
        self._settle(stage.name)
        payload = {"workflow": self.t.name, "run_id": self.i.run_id, "stage": stage.name, "status": rec.status}
        notify(
            self.i.listeners,
            STAGE,
            {**payload, "attempts": rec.attempts, "tokens": rec.tokens, "cost_usd": rec.cost_usd},
        )

    # -- gates and escalation ------------------------------------------------------------------
    def _spent(self, totals: _Totals) -> str:
        spent = f"${totals.cost_usd:.5f}"
        return f"{spent} + {totals.unpriced_calls} unpriced call(s)" if totals.unpriced_calls else spent

    async def _gate(self, stage: Stage) -> bool:
        rec, totals = self.records[stage.name], self._run_totals()
        request = ApprovalRequest(
            kind="stage",
            subject=f"{self.t.name}/{stage.name}",
            question=f"Approve stage '{stage.name}' of workflow '{self.t.name}'? (spent so far {self._spent(totals)})",
            details={
                "workflow": self.t.name,
                "stage": stage.name,
                "params": dict(self.i.params),
                "cost_usd": totals.cost_usd,
                "tokens": totals.tokens,
                "run_id": self.i.run_id,
                "inputs": {d: self.outputs.get(d, "") for d in stage.depends_on},
            },
        )
        assert self.i.approver is not None
        result = await request_approval(self.i.approver, request, timeout_s=self.t.approval_timeout_s)
        rec.approval = _APPROVAL_LABELS.get(result.status, "approver failed")
        notify(self.i.listeners, APPROVAL, {"workflow": self.t.name, "stage": stage.name, "status": rec.approval})
        if not result.approved:
            rec.status = "rejected"
            rec.error = result.error or f"approver answered {result.answer!r}"
            return False
        return True

    def _context(self, stage: Stage, attempt: int) -> RunContext:
        rec, totals = self.records[stage.name], self._run_totals()
        remaining, limit = self.i.rate_limit() if self.i.rate_limit else (None, None)
        return RunContext(
            run_id=self.i.run_id,
            where=f"stage:{stage.name}",
            text=rec.output or rec.error,
            cost_usd=totals.cost_usd,
            tokens=totals.tokens,
            elapsed_s=self.last_elapsed.get(stage.name, 0.0),
            timeout_s=self.t.timeout_for(stage),
            timed_out=self.timed_out.get(stage.name, False),
            calls=totals.calls,
            errors=totals.errors,
            malformed=totals.malformed,
            rate_limit_remaining=remaining,
            rate_limit_limit=limit,
            attempt=attempt,
            model=rec.model,
        )

    async def _escalate(self, stage: Stage) -> Action:
        """Check the engine after ``stage``; re-run it on retry/fallback. Returns the final action."""
        if self.i.engine is None:
            return Action.CONTINUE
        for attempt in itertools.count():
            verdict = await self.i.engine.check(self._context(stage, attempt), approver=self.i.approver)
            if verdict.action not in (Action.RETRY, Action.FALLBACK):
                break
            if verdict.action is Action.FALLBACK:
                self.stage_models[stage.name] = verdict.fallback_model
            self.outputs.pop(stage.name, None)
            self.failures.pop(stage.name, None)
            await self._run_stage(stage)
        if verdict.action.blocks:
            self.reason = f"escalation after stage {stage.name!r}: {verdict.reason}"
        return verdict.action

    # -- the whole workflow --------------------------------------------------------------------
    def _batch(self, pending: list[Stage], done: set[str]) -> list[Stage]:
        """The next stages to run: the first ready stage, with the rest of its parallel group."""
        ready = [s for s in pending if set(s.depends_on) <= done]
        group = self.t.group_of(ready[0].name)
        return [ready[0]] if group is None else [s for s in ready if self.t.group_of(s.name) == group]

    async def _approve(self, batch: list[Stage]) -> bool:
        """Approvals first, one at a time in template order, before any work of the batch starts."""
        for s in batch:
            if s.approval and not await self._gate(s):
                self.reason = f"stage {s.name!r} not approved ({self.records[s.name].approval})"
                return False
        return True

    async def _after(self, batch: list[Stage], done: set[str]) -> str:
        """Escalation checks after a batch; the run's status so far."""
        status = "completed"
        for s in batch:
            action = await self._escalate(s)
            rec = self.records[s.name]
            if rec.status == "failed" and status == "completed":
                status = "failed"
                named = isinstance(self.failures.get(s.name), TimeLimitExceeded)  # its message has the fix
                fix = "" if named else "; raise its timeout_s/max_retries or fix the cause"
                self.reason = f"stage {s.name!r} failed after {rec.attempts} attempt(s): {rec.error}{fix}"
            if action.blocks:
                return "aborted" if action is Action.ABORT else "stopped"
            done.add(s.name)
        return status

    async def run(self) -> WorkflowRun:
        self.t0 = asyncio.get_running_loop().time()
        status, done = "completed", set[str]()
        order = {n: i for i, n in enumerate(self.t.order())}
        pending = sorted(self.t.stages, key=lambda s: order[s.name])
        while pending and status == "completed":
            batch = self._batch(pending, done)
            if not await self._approve(batch):
                status = "rejected"
                break
            await asyncio.gather(*(self._run_stage(s) for s in batch))
            pending = [s for s in pending if s not in batch]
            status = await self._after(batch, done)
        return self._result(status)

    def _result(self, status: str) -> WorkflowRun:
        totals = self._run_totals()
        first_failure = next((self.failures[n] for n in self.records if n in self.failures), None)
        return WorkflowRun(
            run_id=self.i.run_id,
            template=self.t.name,
            request=self.i.request,
            params=dict(self.i.params),
            status=status,
            reason=self.reason,
            stages=[self.records[s.name] for s in self.t.stages],
            outputs=dict(self.outputs),
            tokens=totals.tokens,
            cost_usd=None if totals.unpriced_calls else totals.cost_usd,
            elapsed_s=self._now(),
            escalations=self.i.engine.log(self.i.run_id) if self.i.engine is not None else None,
            unpriced_calls=totals.unpriced_calls,
            _failure=first_failure,
        )


def _validated(
    template: Any, request: Any, params: Mapping[str, Any] | None, approver: Any
) -> tuple[WorkflowTemplate, dict[str, str]]:
    if isinstance(template, Mapping):
        template = WorkflowTemplate.from_dict(template)
    if not isinstance(template, WorkflowTemplate):
        raise WorkflowError(f"template must be a WorkflowTemplate or a mapping, got {type(template).__name__}")
    if not isinstance(request, str) or not request.strip():
        raise WorkflowError("request must be a non-empty string")
    merged = {**template.parameters, **{k: str(v) for k, v in (params or {}).items()}}
    missing = sorted(template.placeholders() - set(merged))
    if missing:
        raise WorkflowError(
            f"workflow {template.name!r} needs parameter(s) {missing}: pass params={{...}} "
            "or give defaults in the template's parameters"
        )
    gated = [s.name for s in template.stages if s.approval]
    if gated and approver is None:
        raise WorkflowError(f"stage(s) {gated} need approval: pass approver=... (e.g. ScriptedApprover(True))")
    return template, merged


def _stage_tools(template: WorkflowTemplate, tools: Mapping[str, Sequence[Any]] | None) -> dict[str, tuple[Any, ...]]:
    if tools is None:
        return {}
    if not isinstance(tools, Mapping):
        raise WorkflowError("tools must map stage names to lists of AG2 tools, e.g. tools={'triage': [lookup]}")
    unknown = sorted(set(tools) - set(template.stage_map))
    if unknown:
        raise WorkflowError(f"tools for unknown stage(s) {unknown}: use stage names of {template.name!r}")
    return {name: tuple(ts) for name, ts in tools.items()}


async def run_workflow(
    template: WorkflowTemplate | Mapping[str, Any],
    request: str,
    *,
    models: Any,
    params: Mapping[str, Any] | None = None,
    approver: Approver | None = None,
    escalation: EscalationEngine | None = None,
    listeners: Sequence[Listener] = (),
    run_id: str | None = None,
    rate_limit: Callable[[], tuple[int, int]] | None = None,
    middleware: MiddlewareSpec | None = None,
    tools: Mapping[str, Sequence[Any]] | None = None,
) -> WorkflowRun:
    """Run a workflow template once.

    Args:
        template: a :class:`WorkflowTemplate` (or a mapping validated into one).
        request: what the workflow is about; every stage receives it.
        models: one AG2 ``ModelConfig`` for every stage, or a mapping of slot/stage name →
            ``ModelConfig`` (with an optional ``"default"``).
        params: values for the instructions' ``{placeholders}`` (over the template's defaults).
        approver: answers approval stages and ``human_review`` escalations (required when the
            template has approval stages).
        escalation: engine checked after every stage; when it has no approver of its own,
            ``approver`` answers its ``human_review`` escalations.
        listeners: called with ``("stage", {...})`` and ``("approval", {...})`` events.
        run_id: defaults to ``<template name>-<n>``.
        rate_limit: returns ``(remaining, limit)`` of the provider's window, for headroom rules.
        middleware: extra AG2 middleware for every stage agent — a list, or a function of the stage
            name such as ``Telemetry.middleware`` — placed outermost (outside the call-level retries,
            so they see one call per model call however many attempts it took).
        tools: stage name → AG2 tools that stage's agent may call. A tool with a side effect should be
            guarded by :meth:`agentops.resilience.IdempotencyLedger.once`: each turn passes the
            idempotency key ``"<run_id>:<stage>"``, so an escalation that re-runs the stage gets the
            recorded result instead of a second side effect.

    Returns:
        A :class:`~agentops.workflows.WorkflowRun` (call ``raise_for_status()`` to turn a failure
        into an exception).

    Raises:
        WorkflowError: invalid template, a missing parameter or model, or an approval stage without
            an approver.
    """
    template, merged = _validated(template, request, params, approver)
    inputs = _Inputs(
        template=template,
        request=request,
        params=merged,
        approver=approver,
        engine=escalation,
        listeners=tuple(listeners),
        run_id=run_id or f"{template.name}-{next(_run_counter)}",
        rate_limit=rate_limit,
        middleware=middleware,
        tools=_stage_tools(template, tools),
    )
    return await _Runner(inputs, models).run()
