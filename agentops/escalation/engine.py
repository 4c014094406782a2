"""The escalation engine: ordered rules evaluated by the runners as they go, handlers run, every
escalation logged.

Why hand-written: AG2 v1 ships retry middleware and approval gates but no rule engine that decides
*when* to escalate across a multi-agent run; the engine here is small, ordered and fully logged.

Concurrency: the engine's log and per-run counters are guarded by a lock; one engine may serve
several concurrent runs (give each run its own ``run_id``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.config import check_unique
from agentops.errors import ConfigError
from agentops.escalation.approvals import ApprovalRequest, Approver, request_approval
from agentops.escalation.rules import Action, Escalation, EscalationRule, Handler, RunContext, Verdict
from agentops.listeners import ESCALATION, Listener, notify

__all__ = ["EscalationEngine", "EscalationRuleError"]

logger = logging.getLogger("agentops.escalation")


class EscalationRuleError(ConfigError):
    """A rule's condition raised (fix the condition); raised only by engines built with ``strict=True``."""


class EscalationEngine:
    """Evaluates ordered rules, runs their handlers, and logs every escalation.

    Rules are checked in the order given. A rule that fires is handled at once; if its handler lets
    the run continue (a review the approver approved) the next rules are still checked, otherwise
    that rule decides the :class:`Verdict` and later rules are not evaluated. A rule whose condition
    raises is logged with outcome ``rule error: ...`` and reported to listeners (or raised as
    :class:`EscalationRuleError` with ``strict=True``).

    Args:
        rules: the ordered rules (names must be unique).
        approver: answers ``human_review`` escalations; without one a review stops the run.
        approval_timeout_s: how long to wait for the approver (``None`` waits forever).
        listeners: called with ``("escalation", {...})`` for each escalation.
        strict: raise instead of logging when a rule's condition raises.
    """

    def __init__(
        self,
        rules: Sequence[EscalationRule] = (),
        *,
        approver: Approver | None = None,
        approval_timeout_s: float | None = 30.0,
        listeners: Sequence[Listener] = (),
        strict: bool = False,
    ) -> None:
        rules = list(rules)
        for r in rules:
            if not isinstance(r, EscalationRule):
                raise ConfigError(f"rules must be EscalationRule objects, got {type(r).__name__}")
        check_unique([r.name for r in rules], "escalation rule names")
        if approval_timeout_s is not None and approval_timeout_s <= 0:
            raise ConfigError(f"approval_timeout_s must be > 0 or None, got {approval_timeout_s!r}")
        self.rules: tuple[EscalationRule, ...] = tuple(rules)
        self.approver = approver
        self.approval_timeout_s = approval_timeout_s
        self.listeners: tuple[Listener, ...] = tuple(listeners)
        self.strict = strict
        self._lock = threading.Lock()
        self._records: list[Escalation] = []
        self._fired_once: set[tuple[str, str]] = set()
        self.listener_errors = 0

    def with_listeners(self, listeners: Sequence[Listener]) -> EscalationEngine:
        """Add listeners (returns self, so runners can pass theirs through)."""
        self.listeners = (*self.listeners, *listeners)
        return self

    @property
    def records(self) -> tuple[Escalation, ...]:
        """Every escalation logged so far, in order."""
        with self._lock:
            return tuple(self._records)

    def log(self, run_id: str | None = None) -> Any:
        """The escalation log as a pandas DataFrame (optionally for one run)."""
        import pandas as pd

        cols = ["seq", "run_id", "where", "rule", "severity", "handler", "outcome", "action", "message"]
        rows = [e.as_row() for e in self.records if run_id is None or e.run_id == run_id]
        return pd.DataFrame(rows, columns=cols).set_index("seq")

    def clear(self) -> None:
        """Forget the log and the once-per-run memory."""
        with self._lock:
            self._records.clear()
            self._fired_once.clear()

    def evaluate(self, ctx: RunContext) -> list[EscalationRule]:
        """The rules that fire for ``ctx``, in order, without handling or logging them.

        A rule whose condition raises is skipped here (:meth:`check` logs it).
        """
        fired = []
        for r in self.rules:
            try:
                if r.condition(ctx):
                    fired.append(r)
            except Exception:
                continue
        return fired

    def _append(self, ctx: RunContext, r: EscalationRule, outcome: str, action: Action, message: str) -> Escalation:
        with self._lock:
            record = Escalation(
                len(self._records) + 1,
                ctx.run_id,
                ctx.where,
                r.name,
                r.severity,
                Handler(r.handler).value,
                outcome,
                action,
                message,
            )
            self._records.append(record)
        self.listener_errors += notify(
            self.listeners,
            ESCALATION,
            {
                "rule": r.name,
                "severity": r.severity,
                "handler": record.handler,
                "outcome": outcome,
                "action": action.value,
                "where": ctx.where,
                "run_id": ctx.run_id,
                "message": message,
            },
        )
        return record

    async def _handle(self, r: EscalationRule, ctx: RunContext, approver: Approver | None = None) -> tuple[str, Action]:
        handler = Handler(r.handler)
        if handler is Handler.ABORT:
            return "aborted", Action.ABORT
        if handler is Handler.RETRY:
            if ctx.attempt < r.max_retries:
                return f"retry {ctx.attempt + 1}/{r.max_retries}", Action.RETRY
            return f"retries exhausted ({r.max_retries})", Action.ABORT
        if handler is Handler.FALLBACK:
            target = getattr(r.fallback_model, "model", repr(r.fallback_model))
            if ctx.model and ctx.model == target:
                return f"already on fallback {target}", Action.ABORT
            return f"fallback to {target}", Action.FALLBACK
        # human review
        approver = self.approver if self.approver is not None else approver
        if approver is None:
            return "no approver configured", Action.STOP
        request = ApprovalRequest(
            kind="escalation",
            subject=r.name,
            question=f"[{r.severity}] {r.describe(ctx)} at {ctx.where or 'run'}. Continue?",
            details={
                "rule": r.name,
                "severity": r.severity,
                "where": ctx.where,
                "cost_usd": ctx.cost_usd,
                "confidence": ctx.confidence,
                "run_id": ctx.run_id,
            },
        )
        result = await request_approval(approver, request, timeout_s=self.approval_timeout_s)
        if result.approved:
            return "approved", Action.CONTINUE
        if result.status == "timeout":
            return "approval timed out", Action.STOP
        if result.status == "error":
            return f"approver failed ({result.error})", Action.STOP
        return "rejected", Action.STOP

    async def check(self, ctx: RunContext, *, approver: Approver | None = None) -> Verdict:
        """Evaluate the rules in order for ``ctx``, handle what fires, log it, and decide.

        Args:
            ctx: the run snapshot.
            approver: answers reviews when the engine has no approver of its own (runners pass theirs).

        Returns:
            A :class:`Verdict` whose ``action`` the runner must follow.

        Raises:
            EscalationRuleError: only with ``strict=True``, when a condition raises.
        """
        escalations: list[Escalation] = []
        for r in self.rules:
            key = (ctx.run_id, r.name)
            if r.once:
                with self._lock:
                    if key in self._fired_once:
                        continue
            try:
                fired = bool(r.condition(ctx))
            except Exception as exc:
                err = f"{type(exc).__name__}: {exc}"
                if self.strict:
                    raise EscalationRuleError(f"escalation rule {r.name!r} raised {err}; fix its condition") from exc
                logger.info("escalation rule %r raised %s (recorded)", r.name, err)
                escalations.append(self._append(ctx, r, f"rule error: {err}", Action.CONTINUE, err))
                continue
            if not fired:
                continue
            if r.once:
                with self._lock:
                    self._fired_once.add(key)
            outcome, action = await self._handle(r, ctx, approver)
            escalations.append(self._append(ctx, r, outcome, action, r.describe(ctx)))
            if action.blocks:
                return Verdict(action, tuple(escalations), r.fallback_model if action is Action.FALLBACK else None)
        return Verdict(Action.CONTINUE, tuple(escalations))

    def __repr__(self) -> str:
        return f"EscalationEngine(rules={[r.name for r in self.rules]}, approver={self.approver is not None})"
