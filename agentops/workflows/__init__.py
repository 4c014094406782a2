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
* **call-level retries** per stage: each model call of the stage's turn is retried by
  :class:`agentops.resilience.RetryPolicy` (composed with AG2's ``RetryMiddleware``) — an attempt
  past the stage's ``timeout_s``, a provider error, an empty answer — retrying only what
  :func:`agentops.errors.is_retryable` allows (never a refusal). An answer cut at the token limit
  is kept: templates cap stage replies on purpose. The turn is never repeated, so a
  tool already called does not run twice; a stage that keeps failing fails the workflow with the
  stage and the cause named (:class:`StageFailed`);
* each turn carries the **idempotency key** ``"<run_id>:<stage>"`` (``variables``), so stage tools
  guarded by :class:`~agentops.resilience.IdempotencyLedger` stay at-most-once across escalation
  re-runs;
* **approval stages are really gated**: before the stage runs, the approver is asked through AG2's
  human-in-the-loop machinery (:func:`agentops.escalation.request_approval`); a no stops the workflow
  (status ``rejected``) and so does a timeout — nothing after the gate runs or spends tokens;
* stages of a ``parallel_groups`` entry whose dependencies are met run **concurrently** (one asyncio
  task each); everything else runs one stage at a time in dependency order, so runs are repeatable;
* an :class:`~agentops.escalation.EscalationEngine` is checked after every stage with the run's cost,
  tokens, error count, timeout and output: ``human_review`` asks before continuing (e.g. spend over a
  threshold), ``retry`` re-runs the stage, ``fallback`` re-runs it on another model, ``stop``/``abort``
  end the workflow;
* per-stage start and end (seconds since the run started), status, attempts, tokens and cost
  (:mod:`agentops.usage`; ``None`` for a model without a price) are recorded, including calls of
  attempts that failed.

For a slow model (a local server), raise the timeouts without editing the template:
``template.replace(default_timeout_s=300)``. A stage that still runs out of time fails with
:class:`agentops.errors.TimeLimitExceeded` as its cause (in the stage's ``error``, the run's
``reason`` and :meth:`WorkflowRun.raise_for_status`), naming the stage, the limit and ``timeout_s``.

Modules: :mod:`~agentops.workflows.template`, :mod:`~agentops.workflows.runner`,
:mod:`~agentops.workflows.results`, :mod:`~agentops.workflows.gantt`.
"""

from __future__ import annotations

from agentops.workflows.gantt import plot_gantt
from agentops.workflows.results import (
    STATUSES,
    GroupTiming,
    StageFailed,
    StageRecord,
    WorkflowRejected,
    WorkflowRun,
)
from agentops.workflows.runner import run_workflow
from agentops.workflows.template import Stage, WorkflowError, WorkflowTemplate

__all__ = [
    "STATUSES",
    "GroupTiming",
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
