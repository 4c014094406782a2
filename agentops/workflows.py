"""Workflow templates: validated stage graphs run by an asyncio runner with real gates.

A :class:`WorkflowTemplate` is data — a name, stages with ``depends_on``, per-stage timeout and retry
budget, stages that need approval, groups of stages that may run in parallel, and parameters the stage
instructions use (``{language}``). Load it from a dict or YAML, validate it once, and run it as often as
you like with different parameters and models::

    template = WorkflowTemplate.from_yaml(text)
    run = await run_workflow(template, "Review PR #42", models=model_config("offline"),
                             params={"language": "python"}, approver=ScriptedApprover(True))
    run.frame()            # one row per stage: status, attempts, tokens, cost, approval
    plot_gantt(run)        # stages on a time axis; parallel stages overlap

What the runner guarantees:

* each stage is one ``ag2.Agent`` turn that receives the request plus the outputs of the stages it
  depends on;
* **timeouts** (``asyncio.wait_for``) and **retries** (``tenacity``) per stage; a stage that keeps
  failing fails the workflow with the stage and the cause named (:class:`StageFailed`);
* **approval stages are really gated**: before the stage runs, the approver is asked through AG2's
  human-in-the-loop machinery (:func:`agentops.escalation.request_approval`); a no stops the workflow
  (status ``rejected``) and so does a timeout — nothing after the gate runs or spends tokens;
* stages of a ``parallel_groups`` entry whose dependencies are met run **concurrently** (one asyncio
  task each); everything else runs one stage at a time in dependency order, so runs are repeatable;
* an :class:`~agentops.escalation.EscalationEngine` is checked after every batch of stages with the
  run's cost, tokens, error count, timeout and output: ``human_review`` asks before continuing
  (e.g. spend over a threshold), ``retry`` re-runs the stage, ``fallback`` re-runs it on another
  model, ``stop``/``abort`` end the workflow;
* per-stage start and end (seconds since the run started), status, attempts, tokens and cost
  (:func:`agentops.pricing.cost`) are recorded, including calls of attempts that failed.

Concurrency: one template may be run by several concurrent ``run_workflow`` calls; each run keeps its
own state.
"""

from __future__ import annotations

import asyncio
import itertools
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ag2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt, wait_exponential

from agentops import _identity  # noqa: F401
from agentops.errors import AgentOpsError, ConfigError
from agentops.escalation import (
    Action,
    ApprovalRequest,
    Approver,
    EscalationEngine,
    RunContext,
    request_approval,
)
from agentops.usage import UsageMeter
from agentops.listeners import APPROVAL, STAGE, Listener, notify
from agentops.stack import MiddlewareSpec, extra_middleware

__all__ = [
    "STATUSES",
    "Stage",
    "StageFailed",
    "StageRecord",
    "WorkflowError",
    "WorkflowRejected",
    "WorkflowRun",
    "WorkflowTemplate",
    "plot_gantt",
    "run_workflow",
]

STATUSES = ("completed", "failed", "rejected", "stopped", "aborted", "skipped")


class WorkflowError(ConfigError):
    """A workflow template or run argument is invalid; the message names the stage and the fix."""


class StageFailed(AgentOpsError):
    """A stage kept failing after its retries; names the stage, the attempts and the last cause."""


class WorkflowRejected(AgentOpsError):
    """The workflow stopped at an approval gate or an escalation."""


class _EmptyOutput(AgentOpsError):
    """The model answered with no text."""


# --------------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------------


class Stage(BaseModel):
    """One stage of a workflow.

    Args:
        name: identifier (letters, digits, ``_``), unique in the template.
        instructions: the stage agent's system prompt; may use ``{parameter}`` placeholders.
        depends_on: stages whose outputs this stage receives and waits for.
        timeout_s: time limit per attempt (default: the template's ``default_timeout_s``).
        max_retries: retries after the first attempt (default: the template's ``default_max_retries``).
        approval: ask the approver before the stage runs.
        model: name of the model slot to use (a key of ``models``); default: the stage name, then
            ``"default"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
    instructions: str = ""
    depends_on: tuple[str, ...] = ()
    timeout_s: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0, le=20)
    approval: bool = False
    model: str | None = None


class WorkflowTemplate(BaseModel):
    """A validated, reusable workflow: stages, dependencies, gates, parallel groups and parameters.

    Raises:
        WorkflowError: (from the constructors) duplicate stages, unknown dependencies, cycles, unknown
            or overlapping parallel groups, dependent stages in one parallel group, or placeholders
            without a parameter default... when a run does not supply them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    stages: tuple[Stage, ...] = Field(min_length=1)
    parallel_groups: tuple[tuple[str, ...], ...] = ()
    default_timeout_s: float = Field(60.0, gt=0)
    default_max_retries: int = Field(1, ge=0, le=20)
    retry_backoff_s: float = Field(0.0, ge=0, description="first wait between retries; doubles each retry")
    approval_timeout_s: float | None = Field(30.0, gt=0)
    parameters: dict[str, str] = Field(default_factory=dict)

    @field_validator("parallel_groups")
    @classmethod
    def _groups_have_two(cls, groups: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        for g in groups:
            if len(g) < 2:
                raise ValueError(f"parallel group {list(g)} needs at least two stages")
        return groups

    @model_validator(mode="after")
    def _check_graph(self) -> WorkflowTemplate:
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate stage name(s) {dupes}")
        known = set(names)
        for s in self.stages:
            for d in s.depends_on:
                if d == s.name:
                    raise ValueError(f"stage {s.name!r} depends on itself")
                if d not in known:
                    raise ValueError(f"stage {s.name!r} depends on unknown stage {d!r}; stages: {names}")
        self._topological()  # raises on cycles
        seen: dict[str, int] = {}
        for i, group in enumerate(self.parallel_groups):
            for n in group:
                if n not in known:
                    raise ValueError(f"parallel group {list(group)} names unknown stage {n!r}")
                if n in seen:
                    raise ValueError(f"stage {n!r} is in two parallel groups; put it in one")
                seen[n] = i
            for a, b in itertools.permutations(group, 2):
                if a in self.ancestors(b):
                    raise ValueError(f"stages {b!r} and {a!r} cannot run in parallel: {b!r} depends on {a!r}")
        return self

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowTemplate:
        """Validate a plain mapping (e.g. parsed YAML/JSON); errors become :class:`WorkflowError`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'template'}: {e['msg']}" for e in exc.errors()
            )
            raise WorkflowError(f"invalid workflow template: {problems}") from None

    @classmethod
    def from_yaml(cls, source: str | Path) -> WorkflowTemplate:
        """Load from YAML text or a ``.yaml``/``.yml`` file path."""
        import yaml

        text = (
            Path(source).read_text()
            if isinstance(source, Path) or str(source).endswith((".yaml", ".yml"))
            else source
        )
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise WorkflowError(f"workflow template is not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise WorkflowError("a workflow template must be a YAML mapping with name and stages")
        return cls.from_dict(data)

    # -- graph helpers -------------------------------------------------------------------------
    @property
    def stage_map(self) -> dict[str, Stage]:
        """Stages by name."""
        return {s.name: s for s in self.stages}

    def ancestors(self, name: str) -> set[str]:
        """Every stage ``name`` depends on, directly or not."""
        by_name = self.stage_map
        out: set[str] = set()
        todo = list(by_name[name].depends_on)
        while todo:
            d = todo.pop()
            if d not in out:
                out.add(d)
                todo.extend(by_name[d].depends_on)
        return out

    def _topological(self) -> list[str]:
        by_name = {s.name: s for s in self.stages}
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str, trail: list[str]) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                cycle = [*trail[trail.index(n) :], n]
                raise ValueError(f"dependency cycle {' → '.join(cycle)}")
            state[n] = 1
            for d in by_name[n].depends_on:
                visit(d, [*trail, n])
            state[n] = 2
            order.append(n)

        for s in self.stages:
            visit(s.name, [])
        return order

    def group_of(self, name: str) -> int | None:
        """Index of the parallel group holding ``name`` (``None`` if it runs alone)."""
        for i, g in enumerate(self.parallel_groups):
            if name in g:
                return i
        return None

    def placeholders(self) -> set[str]:
        """Parameter names used by the stage instructions."""
        names = set()
        for s in self.stages:
            for _, field_name, _, _ in string.Formatter().parse(s.instructions):
                if field_name:
                    names.add(field_name.split(".")[0].split("[")[0])
        return names

    def timeout_for(self, stage: Stage) -> float:
        """Effective timeout of a stage."""
        return stage.timeout_s if stage.timeout_s is not None else self.default_timeout_s

    def retries_for(self, stage: Stage) -> int:
        """Effective retry budget of a stage."""
        return stage.max_retries if stage.max_retries is not None else self.default_max_retries

    def frame(self) -> Any:
        """The template's stages as a pandas DataFrame."""
        import pandas as pd

        rows = [
            {
                "stage": s.name,
                "depends on": ", ".join(s.depends_on) or "—",
                "parallel group": "—" if self.group_of(s.name) is None else self.group_of(s.name),
                "timeout s": self.timeout_for(s),
                "retries": self.retries_for(s),
                "approval": "yes" if s.approval else "",
                "model slot": s.model or "default",
            }
            for s in self.stages
        ]
        return pd.DataFrame(rows).set_index("stage")


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class StageRecord:
    """What happened to one stage in one run (times are seconds since the run started)."""

    stage: str
    group: int | None
    status: str = "skipped"
    attempts: int = 0
    start_s: float | None = None
    end_s: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""
    approval: str = ""
    output: str = ""
    error: str = ""

    @property
    def duration_s(self) -> float | None:
        """End minus start (``None`` if the stage never ran)."""
        if self.start_s is None or self.end_s is None:
            return None
        return self.end_s - self.start_s


@dataclass
class WorkflowRun:
    """The outcome of :func:`run_workflow`.

    Attributes:
        status: ``completed``, ``failed``, ``rejected`` (an approval said no or timed out),
            ``stopped`` (an escalation's review said no) or ``aborted``.
        reason: why it did not complete (names the stage and the cause).
        stages: one :class:`StageRecord` per stage, in template order.
        outputs: stage name → output text, for completed stages.
        escalations: this run's rows of the escalation log.
    """

    run_id: str
    template: str
    request: str
    params: dict[str, str]
    status: str
    reason: str
    stages: list[StageRecord]
    outputs: dict[str, str]
    tokens: int
    cost_usd: float
    elapsed_s: float
    escalations: Any = None
    _failure: BaseException | None = field(default=None, repr=False)

    def frame(self, timings: bool = False) -> Any:
        """Stages as a DataFrame; ``timings=True`` adds start/end/duration (volatile: wall clock)."""
        import pandas as pd

        rows = []
        for r in self.stages:
            row = {
                "stage": r.stage,
                "group": "—" if r.group is None else r.group,
                "status": r.status,
                "attempts": r.attempts,
                "approval": r.approval or "—",
                "model": r.model,
                "tokens": r.tokens,
                "cost_usd": round(r.cost_usd, 6),
            }
            if timings:
                row.update(start_s=r.start_s, end_s=r.end_s, duration_s=r.duration_s)
            rows.append(row)
        return pd.DataFrame(rows).set_index("stage")

    def record(self, stage: str) -> StageRecord:
        """The record of one stage (raises :class:`WorkflowError` for an unknown name)."""
        for r in self.stages:
            if r.stage == stage:
                return r
        raise WorkflowError(f"no stage named {stage!r} in this run; stages: {[r.stage for r in self.stages]}")

    def raise_for_status(self) -> WorkflowRun:
        """Raise :class:`StageFailed` / :class:`WorkflowRejected` unless the run completed; return self."""
        if self.status == "completed":
            return self
        if self.status == "failed":
            raise StageFailed(self.reason) from self._failure
        raise WorkflowRejected(f"workflow {self.template!r} {self.status}: {self.reason}")


# --------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------

_run_counter = itertools.count(1)


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


def _retryable(exc: BaseException) -> bool:
    return not isinstance(exc, ConfigError)


class _Runner:
    def __init__(
        self,
        template: WorkflowTemplate,
        request: str,
        models: Any,
        params: dict[str, str],
        approver: Approver | None,
        engine: EscalationEngine | None,
        listeners: Sequence[Listener],
        run_id: str,
        rate_limit: Callable[[], tuple[int, int]] | None,
        middleware: MiddlewareSpec | None = None,
    ) -> None:
        self.t = template
        self.middleware = middleware
        self.request = request
        self.models = models
        self.params = params
        self.approver = approver
        self.engine = engine
        self.listeners = tuple(listeners)
        self.run_id = run_id
        self.rate_limit = rate_limit
        self.records = {s.name: StageRecord(s.name, template.group_of(s.name)) for s in template.stages}
        self.meters: dict[str, list[UsageMeter]] = {s.name: [] for s in template.stages}
        self.outputs: dict[str, str] = {}
        self.stage_models: dict[str, Any] = {s.name: _model_for(s, models) for s in template.stages}
        self.timed_out: dict[str, bool] = {}
        self.last_elapsed: dict[str, float] = {}
        self.failures: dict[str, BaseException] = {}
        self.reason = ""
        self.t0 = 0.0

    # -- accounting ----------------------------------------------------------------------------
    def _totals(self) -> tuple[int, float, int, int]:
        meters = [m for ms in self.meters.values() for m in ms]
        return (
            sum(m.tokens for m in meters),
            sum(m.cost_usd for m in meters),
            sum(m.calls for m in meters),
            sum(m.errors for m in meters),
        )

    def _settle(self, name: str) -> None:
        rec = self.records[name]
        rec.tokens = sum(m.tokens for m in self.meters[name])
        rec.cost_usd = sum(m.cost_usd for m in self.meters[name])

    # -- one stage -----------------------------------------------------------------------------
    async def _attempts(self, stage: Stage, model: Any) -> str:
        rec = self.records[stage.name]
        timeout = self.t.timeout_for(stage)
        instructions = stage.instructions.format_map(self.params)
        prompt = _prompt(self.request, stage, self.outputs)
        wait = wait_exponential(multiplier=self.t.retry_backoff_s, max=30) if self.t.retry_backoff_s else None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.t.retries_for(stage) + 1),
            retry=retry_if_exception(_retryable),
            reraise=True,
            **({"wait": wait} if wait is not None else {}),
        )
        async for attempt in retrying:
            with attempt:
                rec.attempts += 1
                meter = UsageMeter(getattr(model, "model", ""))
                self.meters[stage.name].append(meter)
                stack = [*extra_middleware(self.middleware, stage.name), meter.middleware()]
                agent = ag2.Agent(stage.name, instructions, config=model, middleware=stack)
                try:
                    reply = await asyncio.wait_for(agent.ask(prompt), timeout)
                except asyncio.TimeoutError:
                    self.timed_out[stage.name] = True
                    raise TimeoutError(f"attempt {rec.attempts} exceeded {timeout:g} s") from None
                body = reply.body or ""
                if not body.strip():
                    raise _EmptyOutput("the model returned no text")
                self.timed_out[stage.name] = False
                return body
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run_stage(self, stage: Stage) -> None:
        rec = self.records[stage.name]
        model = self.stage_models[stage.name]
        rec.model = getattr(model, "model", type(model).__name__)
        began = time.perf_counter() - self.t0
        if rec.start_s is None:
            rec.start_s = began
        try:
            output = await self._attempts(stage, model)
        except (Exception, RetryError) as exc:
            cause = exc.last_attempt.exception() if isinstance(exc, RetryError) else exc
            rec.status = "failed"
            rec.error = f"{type(cause).__name__}: {cause}"
            self.failures[stage.name] = exc
        else:
            rec.status, rec.output, rec.error = "completed", output, ""
            self.outputs[stage.name] = output
        rec.end_s = time.perf_counter() - self.t0
        self.last_elapsed[stage.name] = rec.end_s - began
        self._settle(stage.name)
        self.listener_note(
            STAGE,
            {
                "workflow": self.t.name,
                "run_id": self.run_id,
                "stage": stage.name,
                "status": rec.status,
                "attempts": rec.attempts,
                "tokens": rec.tokens,
                "cost_usd": rec.cost_usd,
            },
        )

    def listener_note(self, event: str, payload: Mapping[str, Any]) -> None:
        notify(self.listeners, event, payload)

    async def _gate(self, stage: Stage) -> bool:
        rec = self.records[stage.name]
        tokens, spent, _, _ = self._totals()
        request = ApprovalRequest(
            kind="stage",
            subject=f"{self.t.name}/{stage.name}",
            question=f"Approve stage '{stage.name}' of workflow '{self.t.name}'? (spent so far ${spent:.5f})",
            details={
                "workflow": self.t.name,
                "stage": stage.name,
                "params": dict(self.params),
                "cost_usd": spent,
                "tokens": tokens,
                "run_id": self.run_id,
                "inputs": {d: self.outputs.get(d, "") for d in stage.depends_on},
            },
        )
        assert self.approver is not None
        result = await request_approval(self.approver, request, timeout_s=self.t.approval_timeout_s)
        rec.approval = {"approved": "approved", "rejected": "rejected", "timeout": "timed out"}.get(
            result.status, "approver failed"
        )
        self.listener_note(APPROVAL, {"workflow": self.t.name, "stage": stage.name, "status": rec.approval})
        if not result.approved:
            rec.status = "rejected"
            rec.error = result.error or f"approver answered {result.answer!r}"
            return False
        return True

    async def _escalate(self, stage: Stage) -> Action:
        """Check the engine after ``stage``; re-run it on retry/fallback. Returns the final action."""
        if self.engine is None:
            return Action.CONTINUE
        attempt = 0
        while True:
            rec = self.records[stage.name]
            tokens, spent, calls, errors = self._totals()
            remaining, limit = self.rate_limit() if self.rate_limit else (None, None)
            ctx = RunContext(
                run_id=self.run_id,
                where=f"stage:{stage.name}",
                text=rec.output or rec.error,
                cost_usd=spent,
                tokens=tokens,
                elapsed_s=self.last_elapsed.get(stage.name, 0.0),
                timeout_s=self.t.timeout_for(stage),
                timed_out=self.timed_out.get(stage.name, False),
                calls=calls,
                errors=errors,
                rate_limit_remaining=remaining,
                rate_limit_limit=limit,
                attempt=attempt,
                model=rec.model,
            )
            verdict = await self.engine.check(ctx, approver=self.approver)
            if verdict.action is Action.RETRY or verdict.action is Action.FALLBACK:
                if verdict.action is Action.FALLBACK:
                    self.stage_models[stage.name] = verdict.fallback_model
                attempt += 1
                self.outputs.pop(stage.name, None)
                self.failures.pop(stage.name, None)
                await self._run_stage(stage)
                continue
            if verdict.action.blocks:
                self.reason = f"escalation after stage {stage.name!r}: {verdict.reason}"
            return verdict.action

    # -- the whole workflow --------------------------------------------------------------------
    async def run(self) -> WorkflowRun:
        self.t0 = time.perf_counter()
        self.reason = ""
        status = "completed"
        done: set[str] = set()
        pending = [s for s in self.t.stages]
        by_name = self.t.stage_map
        order = {n: i for i, n in enumerate(self.t._topological())}
        pending.sort(key=lambda s: order[s.name])
        while pending and status == "completed":
            ready = [s for s in pending if set(s.depends_on) <= done]
            first = ready[0]
            group = self.t.group_of(first.name)
            batch = [first] if group is None else [s for s in ready if self.t.group_of(s.name) == group]
            # approvals first, one at a time in template order, before any work of the batch starts
            for s in batch:
                if s.approval and not await self._gate(s):
                    status = "rejected"
                    self.reason = f"stage {s.name!r} not approved ({self.records[s.name].approval})"
                    break
            if status != "completed":
                break
            await asyncio.gather(*(self._run_stage(s) for s in batch))
            for s in batch:
                pending.remove(by_name[s.name])
            for s in batch:
                action = await self._escalate(s)
                rec = self.records[s.name]
                if rec.status == "failed" and status == "completed":
                    status = "failed"
                    self.reason = (
                        f"stage {s.name!r} failed after {rec.attempts} attempt(s): {rec.error}; "
                        "raise its timeout_s/max_retries or fix the cause"
                    )
                if action is Action.ABORT:
                    status = "aborted"
                    break
                if action.blocks:
                    status = "stopped"
                    break
                done.add(s.name)
        tokens, spent, _, _ = self._totals()
        first_failure = next((self.failures[n] for n in self.records if n in self.failures), None)
        return WorkflowRun(
            run_id=self.run_id,
            template=self.t.name,
            request=self.request,
            params=dict(self.params),
            status=status,
            reason=self.reason,
            stages=[self.records[s.name] for s in self.t.stages],
            outputs=dict(self.outputs),
            tokens=tokens,
            cost_usd=spent,
            elapsed_s=time.perf_counter() - self.t0,
            escalations=self.engine.log(self.run_id) if self.engine is not None else None,
            _failure=first_failure,
        )


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
        escalation: engine checked after every batch of stages; when it has no approver of its own,
            ``approver`` answers its ``human_review`` escalations.
        listeners: called with ``("stage", {...})`` and ``("approval", {...})`` events.
        run_id: defaults to ``<template name>-<n>``.
        rate_limit: returns ``(remaining, limit)`` of the provider's window, for headroom rules.
        middleware: extra AG2 middleware for every stage agent — a list, or a function of the stage
            name such as ``Telemetry.middleware`` — placed outermost.

    Returns:
        A :class:`WorkflowRun` (call :meth:`WorkflowRun.raise_for_status` to turn a failure into an
        exception).

    Raises:
        WorkflowError: invalid template, a missing parameter or model, or an approval stage without
            an approver.
    """
    if isinstance(template, Mapping):
        template = WorkflowTemplate.from_dict(template)
    if not isinstance(template, WorkflowTemplate):
        raise WorkflowError(
            f"template must be a WorkflowTemplate or a mapping, got {type(template).__name__}"
        )
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
        raise WorkflowError(
            f"stage(s) {gated} need approval: pass approver=... (e.g. ScriptedApprover(True))"
        )
    runner = _Runner(
        template,
        request,
        models,
        merged,
        approver,
        escalation,
        listeners,
        run_id or f"{template.name}-{next(_run_counter)}",
        rate_limit,
        middleware,
    )
    return await runner.run()


# --------------------------------------------------------------------------------------------------
# Gantt chart
# --------------------------------------------------------------------------------------------------

_COLORS = {
    "completed": "#31a354",
    "failed": "#de2d26",
    "rejected": "#fd8d3c",
    "stopped": "#fd8d3c",
    "aborted": "#de2d26",
    "skipped": "#bdbdbd",
}


def plot_gantt(run: WorkflowRun, ax: Any = None, title: str | None = None) -> Any:
    """Stages as horizontal bars on a time axis (seconds since the run started); parallel stages
    overlap. A stage stopped at its gate is marked ✕ where the run ended; skipped stages have no bar.
    Returns the matplotlib ``Axes``."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.5 * len(run.stages) + 1.2))
    labels = []
    last_end = max((r.end_s for r in run.stages if r.end_s is not None), default=0.0)
    for i, r in enumerate(run.stages):
        labels.append(r.stage + (f"  [group {r.group}]" if r.group is not None else ""))
        if r.start_s is not None and r.end_s is not None:
            ax.barh(
                i,
                max(r.end_s - r.start_s, 1e-3),
                left=r.start_s,
                color=_COLORS.get(r.status, "#6baed6"),
                edgecolor="#333333",
            )
        elif r.status != "skipped":
            ax.plot([last_end], [i], marker="x", markersize=10, color=_COLORS.get(r.status, "#333333"))
    ax.set_yticks(range(len(run.stages)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the workflow started")
    ax.set_title(title or f"{run.template} ({run.status})")
    present = sorted({r.status for r in run.stages})
    ax.legend(
        handles=[Patch(color=_COLORS.get(s, "#6baed6"), label=s) for s in present],
        loc="lower right",
        fontsize=8,
    )
    ax.grid(axis="x", alpha=0.3)
    return ax
