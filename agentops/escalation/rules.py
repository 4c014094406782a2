"""Escalation rules: a run snapshot (:class:`RunContext`), named conditions with a severity and a
handler (:class:`EscalationRule`), what the engine decided (:class:`Verdict`), and factories for the
usual rules.

>>> rule = cost_over(0.01)
>>> rule.condition(RunContext(cost_usd=0.02)), rule.describe(RunContext(cost_usd=0.02))
(True, 'spent $0.02000 > $0.01000')
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError
from agentops.guardrails import scan

__all__ = [
    "SEVERITIES",
    "Action",
    "Escalation",
    "EscalationRule",
    "Handler",
    "RunContext",
    "Severity",
    "Verdict",
    "cost_over",
    "default_rules",
    "default_sensitive_detector",
    "error_rate_over",
    "low_confidence",
    "rate_limit_headroom",
    "sensitive_data",
    "timed_out",
]

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")


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
        errors: how many of them failed without an answer.
        malformed: how many were served an answer that was unusable (cut at the token limit, bad tool-call
            arguments, invalid structured output); not counted in ``errors``.
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
    malformed: int = 0
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
            raise ConfigError(f"rule {self.name!r}: unknown handler {self.handler!r}; use one of {valid}") from None
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

    return EscalationRule("sensitive_data", condition, severity, handler, "sensitive data in {where}", **options)


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
