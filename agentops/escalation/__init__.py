"""Escalation rules: ordered conditions over a run, each with a severity and a handler, and a log.

A production run needs to know *when to stop trusting itself*: the router is unsure, the request
carries personal data, the provider is about to rate-limit us, a stage timed out, the bill crossed a
threshold, too many calls are failing. This package turns those situations into data:

* :class:`RunContext` — a snapshot of a run the runners fill in as they go (confidence, text, cost,
  tokens, rate-limit headroom, elapsed time, error counts, attempt number).
* :class:`EscalationRule` — a named condition over that snapshot with a :data:`Severity` and a
  :class:`Handler`: ``retry`` (bounded), ``human_review`` (asks the approver), ``fallback`` (switch to
  another AG2 ``ModelConfig``) or ``abort``. Factories build the usual rules: :func:`low_confidence`,
  :func:`sensitive_data`, :func:`rate_limit_headroom`, :func:`timed_out`, :func:`cost_over`,
  :func:`error_rate_over`.
* :class:`EscalationEngine` — evaluates the rules **in order** each time a runner calls
  :meth:`EscalationEngine.check`, runs the handlers, logs every escalation (:meth:`~EscalationEngine.log`
  as a pandas DataFrame) and tells the runner what to do next (:class:`Verdict`). The role-graph runner
  (:mod:`agentops.graph`) and the workflow runner (:mod:`agentops.workflows`) call it as they run.

Human review goes through AG2's human-in-the-loop machinery: :func:`request_approval` asks through a
one-turn ``ag2.Agent`` whose ``hitl_hook`` is the approver, so AG2's timeout
(``HumanInputTimeoutError``) and failure classification apply. The approver is a plain callable (sync
or async) that receives an :class:`ApprovalRequest`; notebooks and tests use
:class:`ScriptedApprover`, never stdin.

Sensitive-data detection is pluggable: :func:`sensitive_data` takes any ``Callable[[str], bool]``. The
default, :func:`default_sensitive_detector`, is :func:`agentops.guardrails.scan` (PII and secrets,
validated).

Example::

    engine = EscalationEngine(
        [cost_over(0.01), low_confidence(0.6)],
        approver=ScriptedApprover(True),
    )
    verdict = await engine.check(RunContext(run_id="demo", where="router", confidence=0.4))
    verdict.action          # Action.CONTINUE if the reviewer approved, Action.STOP otherwise
    engine.log()            # one row per escalation

Modules: :mod:`~agentops.escalation.rules`, :mod:`~agentops.escalation.engine`,
:mod:`~agentops.escalation.approvals`.
"""

from __future__ import annotations

from agentops.escalation.approvals import (
    ApprovalRequest,
    ApprovalResult,
    Approver,
    ScriptedApprover,
    request_approval,
)
from agentops.escalation.engine import EscalationEngine, EscalationRuleError
from agentops.escalation.rules import (
    SEVERITIES,
    Action,
    Escalation,
    EscalationRule,
    Handler,
    RunContext,
    Severity,
    Verdict,
    cost_over,
    default_rules,
    default_sensitive_detector,
    error_rate_over,
    low_confidence,
    rate_limit_headroom,
    sensitive_data,
    timed_out,
)

__all__ = [
    "SEVERITIES",
    "Action",
    "ApprovalRequest",
    "ApprovalResult",
    "Approver",
    "Escalation",
    "EscalationEngine",
    "EscalationRule",
    "EscalationRuleError",
    "Handler",
    "RunContext",
    "ScriptedApprover",
    "Severity",
    "Verdict",
    "cost_over",
    "default_rules",
    "default_sensitive_detector",
    "error_rate_over",
    "low_confidence",
    "rate_limit_headroom",
    "request_approval",
    "sensitive_data",
    "timed_out",
]
