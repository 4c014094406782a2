"""The observability hook every agentops module shares: ``listener(kind, payload)``.

Guardrails, tool authorization, budgets, escalation, role graphs, workflows and evals report what they
did to any number of listeners — plain callables such as ``Telemetry.listener`` — without importing
telemetry. Payloads carry names and outcomes only, never raw user content.

A listener that raises is logged and skipped: observing a run must never break it.

>>> seen = []
>>> notify([lambda kind, payload: seen.append((kind, payload["stage"]))], STAGE,
...        {"workflow": "review", "stage": "lint", "status": "completed"})
0
>>> seen
[('stage', 'lint')]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agentops import _identity  # noqa: F401

__all__ = [
    "AGENT_CALL",
    "APPROVAL",
    "BREAKER",
    "BUDGET_REFUSED",
    "ESCALATION",
    "EVAL_CASE",
    "FALLBACK",
    "GUARDRAIL_FINDING",
    "HANDOFF_REFUSED",
    "KINDS",
    "MALFORMED_ANSWER",
    "PAYLOAD_KEYS",
    "RETRY",
    "STAGE",
    "TOOL_DENIED",
    "Listener",
    "checked_listeners",
    "notify",
]

Listener = Callable[[str, Mapping[str, Any]], None]

GUARDRAIL_FINDING = "guardrail.finding"  # {"agent", "entity_type", "where", "action"}
TOOL_DENIED = "tool.denied"  # {"agent", "tool", "reason"}
BUDGET_REFUSED = "budget.refused"  # {"agent", "budget", "scope"}
ESCALATION = "escalation"  # {"rule", "severity", "handler", "outcome", ...}
HANDOFF_REFUSED = "handoff.refused"  # {"from", "to", "reason"}
STAGE = "stage"  # workflow stage finished: {"workflow", "stage", "status", ...}
APPROVAL = "approval"  # workflow approval gate: {"workflow", "stage", "status"}
EVAL_CASE = "eval.case"  # {"case", "passed", "tags"}
AGENT_CALL = "agent.call"  # orchestrated call: {"agent", "capability", "outcome", "latency_s", "tokens", "cost_usd"}
RETRY = "resilience.retry"  # a model call or idempotent tool is tried again: {"model", "attempt", "error", "wait_s"}
BREAKER = "resilience.breaker"  # a circuit changed state: {"breaker", "from", "to"}
FALLBACK = "resilience.fallback"  # one step of a fallback chain: {"step", "model", "outcome"}
MALFORMED_ANSWER = "llm.malformed"  # a served answer was unusable (bad tool arguments...): {"agent", "model"}
KINDS = (
    GUARDRAIL_FINDING,
    TOOL_DENIED,
    BUDGET_REFUSED,
    ESCALATION,
    HANDOFF_REFUSED,
    STAGE,
    APPROVAL,
    EVAL_CASE,
    AGENT_CALL,
    RETRY,
    BREAKER,
    FALLBACK,
    MALFORMED_ANSWER,
)

#: The payload keys every event of a kind carries (emitters may add more).
PAYLOAD_KEYS: dict[str, tuple[str, ...]] = {
    GUARDRAIL_FINDING: ("agent", "entity_type", "where", "action"),
    TOOL_DENIED: ("agent", "tool", "reason"),
    BUDGET_REFUSED: ("agent", "budget", "scope"),
    ESCALATION: ("rule", "severity", "handler", "outcome"),
    HANDOFF_REFUSED: ("from", "to", "reason"),
    STAGE: ("workflow", "stage", "status"),
    APPROVAL: ("workflow", "stage", "status"),
    EVAL_CASE: ("case", "passed", "tags"),
    AGENT_CALL: ("agent", "capability", "outcome", "latency_s", "tokens", "cost_usd"),
    RETRY: ("model", "attempt", "error", "wait_s"),
    BREAKER: ("breaker", "from", "to"),
    FALLBACK: ("step", "model", "outcome"),
    MALFORMED_ANSWER: ("agent", "model"),
}

logger = logging.getLogger(__name__)


def checked_listeners(listeners: Iterable[Listener], owner: str) -> tuple[Listener, ...]:
    """``listeners`` as a tuple, or one ``ConfigError`` naming ``owner`` and the fix.

    :func:`notify` never lets a listener break a run, so a listener that cannot even be called (the
    ``Telemetry`` object where ``telemetry.listener`` was meant) would only log a warning per event;
    it is refused where it is given instead.

    >>> checked_listeners([print], "RetryPolicy")
    (<built-in function print>,)
    """
    from agentops.errors import ConfigError

    fix = "pass callables listener(kind, payload), e.g. listeners=[telemetry.listener]"
    if isinstance(listeners, (str, bytes)) or not isinstance(listeners, Iterable):
        got = type(listeners).__name__
        raise ConfigError(f"{owner}: listeners must be callables in a list, got {got}; {fix}")
    out = tuple(listeners)
    bad = next((x for x in out if not callable(x)), None)
    if bad is not None:
        raise ConfigError(f"{owner}: listeners must be callables, got {type(bad).__name__}; {fix}")
    return out


def notify(listeners: Iterable[Listener], kind: str, payload: Mapping[str, Any]) -> int:
    """Call every listener with ``(kind, copy of payload)``; one that raises is logged, never re-raised.

    Returns:
        How many listeners raised.
    """
    failed = 0
    for listener in listeners:
        try:
            listener(kind, dict(payload))
        except Exception:  # a broken observer must not break the run
            failed += 1
            logger.warning("listener %r raised on %r; ignored", listener, kind, exc_info=True)
    return failed
