"""Escalation rules: ordered conditions over a run, each with a severity and a handler, and a log.

A production run needs to know *when to stop trusting itself*: the router is unsure, the request
carries personal data, the provider is about to rate-limit us, a stage timed out, the bill crossed a
threshold, too many calls are failing. This module turns those situations into data:

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

Human review goes through AG2's human-in-the-loop machinery: :func:`request_approval` puts a
``HumanInputRequest`` on an AG2 stream and answers it with the approver wrapped exactly as
``Agent(hitl_hook=...)`` wraps a hook, so AG2's timeout (``HumanInputTimeoutError``) and failure
classification apply. The approver is a plain callable (sync or async) that receives an
:class:`ApprovalRequest`; notebooks and tests use :class:`ScriptedApprover`, never stdin.

Sensitive-data detection is pluggable: :func:`sensitive_data` takes any ``Callable[[str], bool]``. The
default, :func:`default_sensitive_detector`, is :func:`agentops.guardrails.scan` (PII and secrets,
validated); any ``Callable[[str], bool]`` can replace it.

Why hand-written: AG2 v1 ships retry middleware and approval gates but no rule engine that decides
*when* to escalate across a multi-agent run; the engine here is small, ordered and fully logged.

Example::

    engine = EscalationEngine(
        [cost_over(0.01), low_confidence(0.6)],
        approver=ScriptedApprover(True),
    )
    verdict = await engine.check(RunContext(run_id="demo", where="router", confidence=0.4))
    verdict.action          # Action.CONTINUE if the reviewer approved, Action.STOP otherwise
    engine.log()            # one row per escalation

Concurrency: the engine's log and per-run counters are guarded by a lock; one engine may serve
several concurrent runs (give each run its own ``run_id``).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ag2.context import ConversationContext
from ag2.events import HumanInputRequest
from ag2.exceptions import HumanInputError, HumanInputTimeoutError
from ag2.hitl import wrap_hitl
from ag2.stream import MemoryStream

from agentops import _identity  # noqa: F401
from agentops.errors import AgentOpsError, ConfigError
from agentops.guardrails import scan
from agentops.listeners import ESCALATION, Listener, notify

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

logger = logging.getLogger(__name__)

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

class EscalationRuleError(AgentOpsError):
    """A rule's condition raised; raised only by engines built with ``strict=True``."""


# --------------------------------------------------------------------------------------------------
# Approvals through AG2's human-in-the-loop seam
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalRequest:
    """What an approver is asked: a question plus the structured facts behind it.

    Attributes:
        kind: ``"stage"`` (a workflow approval stage) or ``"escalation"`` (a human-review handler).
        subject: what is being approved, e.g. ``"code_review/deploy"`` or ``"cost_over"``.
        question: the sentence a human would read.
        details: facts for a programmatic approver (cost, confidence, severity, ...).
    """

    kind: str
    subject: str
    question: str
    details: Mapping[str, Any] = field(default_factory=dict)


Approver = Callable[[ApprovalRequest], "bool | str | Awaitable[bool | str]"]
"""A sync or async callable answering an :class:`ApprovalRequest` with a bool or a yes/no string."""

_YES = frozenset({"y", "yes", "1", "true", "approve", "approved", "ok"})


@dataclass(frozen=True)
class ApprovalResult:
    """The outcome of :func:`request_approval`: ``status`` is approved, rejected, timeout or error."""

    status: Literal["approved", "rejected", "timeout", "error"]
    answer: str = ""
    error: str = ""

    @property
    def approved(self) -> bool:
        """True only for an explicit yes."""
        return self.status == "approved"


def _normalise_answer(answer: Any) -> str:
    if isinstance(answer, bool):
        return "yes" if answer else "no"
    return str(answer).strip()


async def request_approval(
    approver: Approver,
    request: ApprovalRequest,
    *,
    timeout_s: float | None = None,
) -> ApprovalResult:
    """Ask ``approver`` through AG2's human-in-the-loop machinery and classify the answer.

    The question travels as an AG2 ``HumanInputRequest`` on a stream whose hook is the approver
    wrapped by ``ag2.hitl.wrap_hitl`` (what ``Agent(hitl_hook=...)`` does), so AG2 enforces the
    timeout and classifies failures. Only ``True`` or a yes-word (yes, y, approve, ok, 1) approves.

    Args:
        approver: sync or async callable receiving the :class:`ApprovalRequest`.
        request: what to ask.
        timeout_s: seconds to wait for an answer (``None`` waits forever).

    Returns:
        An :class:`ApprovalResult`; this function never raises for a slow or broken approver.
    """
    if timeout_s is not None and timeout_s <= 0:
        raise ConfigError(f"approval timeout_s must be > 0 or None, got {timeout_s!r}")

    async def hook(event: Any) -> str:
        answer = approver(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return _normalise_answer(answer)

    stream = MemoryStream()
    context = ConversationContext(stream=stream)
    try:
        with stream.where(HumanInputRequest).sub_scope(wrap_hitl(hook)(()), interrupt=True):
            answer = await context.input(request.question, timeout=timeout_s)
    except HumanInputTimeoutError:
        return ApprovalResult("timeout", error=f"no answer within {timeout_s:g} s")
    except HumanInputError as exc:
        cause = exc.__cause__ or exc
        return ApprovalResult("error", error=f"{type(cause).__name__}: {cause}")
    answer = _normalise_answer(answer)
    return ApprovalResult("approved" if answer.lower() in _YES else "rejected", answer)


class ScriptedApprover:
    """An approver that answers from a script — for notebooks and tests, never stdin.

    Each answer is ``True``/``False``, a string (``"yes"``, ``"no"``), or ``None`` meaning *never
    answer* (the call waits until the approval times out). Every request is kept in :attr:`asked`.

    Args:
        *answers: answers in the order requests arrive.
        default: answer once the script is used up; ``None`` (default) raises a clear error instead.
    """

    def __init__(self, *answers: bool | str | None, default: bool | str | None = None) -> None:
        self._answers = list(answers)
        self._default = default
        self._lock = threading.Lock()
        self.asked: list[ApprovalRequest] = []

    async def __call__(self, request: ApprovalRequest) -> bool | str:
        with self._lock:
            self.asked.append(request)
            if self._answers:
                answer = self._answers.pop(0)
            elif self._default is not None:
                answer = self._default
            else:
                raise AgentOpsError(
                    f"scripted approver has no answer left for {request.subject!r}; "
                    "add one to ScriptedApprover(...) or pass default="
                )
        if answer is None:
            await asyncio.Event().wait()  # never answers: the caller's timeout decides
        return answer  # type: ignore[return-value]

    def frame(self) -> Any:
        """The requests received so far as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            [{"kind": r.kind, "subject": r.subject, "question": r.question} for r in self.asked],
            columns=["kind", "subject", "question"],
        )


# --------------------------------------------------------------------------------------------------
# Context, rules, handlers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunContext:
    """A snapshot of a run that rules read. Runners fill in what they know; the rest keeps its default.

    Attributes:
        run_id: identifies the run (``once`` rules fire at most once per run id).
        where: the step being checked, e.g. ``"router"`` or ``"stage:review"``.
        text: content to scan (the request, a stage output).
        confidence: the router's confidence in [0, 1], if any.
        cost_usd: money spent by the run so far.
        tokens: tokens used by the run so far.
        elapsed_s: seconds spent on the step (or run).
        timeout_s: the step's time limit, if any.
        timed_out: the step hit its time limit.
        calls: model calls (or attempts) made so far.
        errors: how many of them failed.
        rate_limit_remaining: requests left in the provider's window, if known.
        rate_limit_limit: size of that window, if known.
        attempt: how many times an escalation already retried this step (0 on the first check).
        model: name of the model the step used.
        extra: anything else a custom rule needs.
    """

    run_id: str = ""
    where: str = ""
    text: str = ""
    confidence: float | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    elapsed_s: float = 0.0
    timeout_s: float | None = None
    timed_out: bool = False
    calls: int = 0
    errors: int = 0
    rate_limit_remaining: int | None = None
    rate_limit_limit: int | None = None
    attempt: int = 0
    model: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        """``errors / calls`` (0 when nothing was called)."""
        return self.errors / self.calls if self.calls else 0.0

    def with_(self, **changes: Any) -> RunContext:
        """A copy with some fields changed."""
        return replace(self, **changes)


class Handler(str, enum.Enum):
    """What happens when a rule fires."""

    RETRY = "retry"
    HUMAN_REVIEW = "human_review"
    FALLBACK = "fallback"
    ABORT = "abort"


class Action(str, enum.Enum):
    """What the runner must do after a check."""

    CONTINUE = "continue"  # nothing fired, or every review was approved
    RETRY = "retry"  # run the step again
    FALLBACK = "fallback"  # run the step again on Verdict.fallback_model
    STOP = "stop"  # a human said no (or could not be asked): stop, hand to people
    ABORT = "abort"  # stop now: the situation is unsafe

    @property
    def blocks(self) -> bool:
        """True for every action except ``continue``."""
        return self is not Action.CONTINUE


@dataclass(frozen=True)
class EscalationRule:
    """A named condition with a severity and a handler.

    Args:
        name: unique within an engine; shown in the log.
        condition: ``condition(ctx) -> bool``; if it raises the engine records the error.
        severity: one of ``low``, ``medium``, ``high``, ``critical``.
        handler: a :class:`Handler` (or its value as a string).
        message: text for the log, formatted with the context's fields (``{cost_usd:.4f}``).
        max_retries: for ``retry``: how many retries before the rule aborts instead.
        fallback_model: for ``fallback``: the AG2 ``ModelConfig`` to switch to.
        once: fire at most once per ``run_id`` (e.g. ask about cost once, not after every stage).
    """

    name: str
    condition: Callable[[RunContext], bool]
    severity: Severity = "medium"
    handler: Handler | str = Handler.HUMAN_REVIEW
    message: str = ""
    max_retries: int = 2
    fallback_model: Any = None
    once: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"escalation rule name must be a non-empty string, got {self.name!r}")
        if not callable(self.condition):
            raise ConfigError(f"rule {self.name!r}: condition must be callable ctx -> bool")
        if self.severity not in SEVERITIES:
            raise ConfigError(f"rule {self.name!r}: severity {self.severity!r} is not one of {SEVERITIES}")
        try:
            handler = Handler(self.handler)
        except ValueError:
            valid = ", ".join(h.value for h in Handler)
            raise ConfigError(
                f"rule {self.name!r}: unknown handler {self.handler!r}; use one of {valid}"
            ) from None
        object.__setattr__(self, "handler", handler)
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(f"rule {self.name!r}: max_retries must be an int ≥ 0, got {self.max_retries!r}")
        if handler is Handler.FALLBACK and self.fallback_model is None:
            raise ConfigError(f"rule {self.name!r}: handler 'fallback' needs fallback_model=<ModelConfig>")

    def describe(self, ctx: RunContext) -> str:
        """The rule's message formatted with the context (falls back to the bare template)."""
        if not self.message:
            return self.name
        fields = {**ctx.__dict__, "error_rate": ctx.error_rate, **dict(ctx.extra)}
        try:
            return self.message.format(**fields)
        except (KeyError, ValueError, TypeError, IndexError):
            return self.message


@dataclass(frozen=True)
class Escalation:
    """One logged escalation (or rule error)."""

    seq: int
    run_id: str
    where: str
    rule: str
    severity: str
    handler: str
    outcome: str
    action: Action
    message: str

    def as_row(self) -> dict[str, Any]:
        """A plain dict for a DataFrame row."""
        return {**self.__dict__, "action": self.action.value}


@dataclass(frozen=True)
class Verdict:
    """What :meth:`EscalationEngine.check` decided: the action and every escalation behind it."""

    action: Action
    escalations: tuple[Escalation, ...] = ()
    fallback_model: Any = None

    @property
    def proceed(self) -> bool:
        """True when the runner may carry on as planned."""
        return self.action is Action.CONTINUE

    @property
    def reason(self) -> str:
        """The deciding escalation as ``rule: outcome`` (empty when nothing blocked)."""
        deciding = next((e for e in reversed(self.escalations) if e.action is self.action), None)
        return f"{deciding.rule}: {deciding.outcome}" if deciding and self.action.blocks else ""


# --------------------------------------------------------------------------------------------------
# Rule factories
# --------------------------------------------------------------------------------------------------

def default_sensitive_detector(text: str) -> bool:
    """True when :func:`agentops.guardrails.scan` finds PII or a secret in ``text``.

    The same validated detectors as the guardrail middleware (Luhn-checked cards, SSN rules, provider
    key formats, high-entropy assignments), so escalation and filtering never disagree about what is
    sensitive. Any ``Callable[[str], bool]`` can replace it.
    """
    return bool(text) and bool(scan(text))


def _check_handler(handler: Handler | str, fallback_model: Any) -> None:
    if Handler(handler) is Handler.FALLBACK and fallback_model is None:
        raise ConfigError("handler 'fallback' needs fallback_model=<ModelConfig>")


def low_confidence(
    threshold: float = 0.6,
    *,
    handler: Handler | str = Handler.HUMAN_REVIEW,
    severity: Severity = "medium",
    **options: Any,
) -> EscalationRule:
    """Fires when ``ctx.confidence`` is known and below ``threshold``."""
    if not 0 <= threshold <= 1:
        raise ConfigError(f"confidence threshold must be in [0, 1], got {threshold!r}")

    def condition(ctx: RunContext) -> bool:
        return ctx.confidence is not None and ctx.confidence < threshold

    return EscalationRule(
        "low_confidence",
        condition,
        severity,
        handler,
        f"confidence {{confidence:.2f}} < {threshold:.2f}",
        **options,
    )


def sensitive_data(
    detector: Callable[[str], bool] = default_sensitive_detector,
    *,
    handler: Handler | str = Handler.HUMAN_REVIEW,
    severity: Severity = "high",
    **options: Any,
) -> EscalationRule:
    """Fires when ``detector(ctx.text)`` is true (plug in any ``Callable[[str], bool]``)."""
    if not callable(detector):
        raise ConfigError("sensitive_data(detector=...) needs a callable text -> bool")

    def condition(ctx: RunContext) -> bool:
        return bool(detector(ctx.text))

    return EscalationRule(
        "sensitive_data", condition, severity, handler, "sensitive data in {where}", **options
    )


def rate_limit_headroom(
    min_fraction: float = 0.1,
    *,
    handler: Handler | str = Handler.FALLBACK,
    severity: Severity = "medium",
    fallback_model: Any = None,
    **options: Any,
) -> EscalationRule:
    """Fires when fewer than ``min_fraction`` of the rate-limit window's requests remain."""
    if not 0 < min_fraction <= 1:
        raise ConfigError(f"min_fraction must be in (0, 1], got {min_fraction!r}")
    _check_handler(handler, fallback_model)

    def condition(ctx: RunContext) -> bool:
        if ctx.rate_limit_remaining is None or not ctx.rate_limit_limit:
            return False
        return ctx.rate_limit_remaining / ctx.rate_limit_limit < min_fraction

    return EscalationRule(
        "rate_limit_headroom",
        condition,
        severity,
        handler,
        "{rate_limit_remaining} of {rate_limit_limit} requests left",
        fallback_model=fallback_model,
        **options,
    )


def timed_out(
    *,
    handler: Handler | str = Handler.RETRY,
    severity: Severity = "high",
    max_retries: int = 1,
    **options: Any,
) -> EscalationRule:
    """Fires when the step timed out (or ran longer than its ``timeout_s``)."""

    def condition(ctx: RunContext) -> bool:
        return ctx.timed_out or (ctx.timeout_s is not None and ctx.elapsed_s > ctx.timeout_s)

    return EscalationRule(
        "timeout",
        condition,
        severity,
        handler,
        "{where} exceeded {timeout_s} s",
        max_retries=max_retries,
        **options,
    )


def cost_over(
    threshold_usd: float,
    *,
    handler: Handler | str = Handler.HUMAN_REVIEW,
    severity: Severity = "high",
    once: bool = True,
    **options: Any,
) -> EscalationRule:
    """Fires when the run's spend exceeds ``threshold_usd`` (once per run by default)."""
    if threshold_usd < 0:
        raise ConfigError(f"cost threshold must be ≥ 0, got {threshold_usd!r}")

    def condition(ctx: RunContext) -> bool:
        return ctx.cost_usd > threshold_usd

    return EscalationRule(
        "cost_over",
        condition,
        severity,
        handler,
        f"spent ${{cost_usd:.5f}} > ${threshold_usd:.5f}",
        once=once,
        **options,
    )


def error_rate_over(
    threshold: float = 0.25,
    *,
    min_calls: int = 4,
    handler: Handler | str = Handler.ABORT,
    severity: Severity = "critical",
    **options: Any,
) -> EscalationRule:
    """Fires when at least ``min_calls`` were made and the error rate exceeds ``threshold``."""
    if not 0 <= threshold < 1:
        raise ConfigError(f"error-rate threshold must be in [0, 1), got {threshold!r}")

    def condition(ctx: RunContext) -> bool:
        return ctx.calls >= min_calls and ctx.error_rate > threshold

    return EscalationRule(
        "error_rate",
        condition,
        severity,
        handler,
        "{errors}/{calls} calls failed",
        **options,
    )


def default_rules(
    *,
    confidence_threshold: float = 0.6,
    cost_threshold_usd: float = 0.05,
    error_rate_threshold: float = 0.25,
    fallback_model: Any = None,
    detector: Callable[[str], bool] = default_sensitive_detector,
) -> list[EscalationRule]:
    """The usual set, most severe first: error rate (abort), sensitive data and cost (human review),
    low confidence (human review), timeout (retry), and rate-limit headroom (fallback, if a fallback
    model is given)."""
    rules = [
        error_rate_over(error_rate_threshold),
        sensitive_data(detector),
        cost_over(cost_threshold_usd),
        low_confidence(confidence_threshold),
        timed_out(),
    ]
    if fallback_model is not None:
        rules.append(rate_limit_headroom(fallback_model=fallback_model))
    return rules


# --------------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------------


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
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"duplicate escalation rule name(s) {dupes}; give each rule a unique name")
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

    def _append(
        self, ctx: RunContext, r: EscalationRule, outcome: str, action: Action, message: str
    ) -> Escalation:
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

    async def _handle(
        self, r: EscalationRule, ctx: RunContext, approver: Approver | None = None
    ) -> tuple[str, Action]:
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
                    raise EscalationRuleError(
                        f"escalation rule {r.name!r} raised {err}; fix its condition"
                    ) from exc
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
                return Verdict(
                    action, tuple(escalations), r.fallback_model if action is Action.FALLBACK else None
                )
        return Verdict(Action.CONTINUE, tuple(escalations))

    def __repr__(self) -> str:
        return f"EscalationEngine(rules={[r.name for r in self.rules]}, approver={self.approver is not None})"
