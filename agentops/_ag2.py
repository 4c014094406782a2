"""Every coupling to AG2 beyond its documented public API, one section per concern.

Each name here relies on something AG2 1.x does but does not promise — a private module, an
undocumented key, a behaviour — and has a contract test in ``tests/test_ag2_contract.py`` against the
pinned AG2 version, so an AG2 upgrade that breaks one fails one file with a named test instead of a
chapter. Each section says why no public alternative exists.
"""

from __future__ import annotations

import functools
from typing import Any

from opentelemetry import trace as _trace

# ==================================================================================================
# Telemetry (agentops.telemetry)
# ==================================================================================================

#: The attribute AG2's ``TelemetryMiddleware`` stamps on every span it opens, and its values. AG2
#: defines them in its private ``ag2._telemetry_consts``; the eval trace reader matches on them too.
SPAN_TYPE_ATTR = "ag2.span.type"
SPAN_TYPE_AGENT = "agent"  # invoke_agent <name>
SPAN_TYPE_LLM = "llm"  # chat <model>
SPAN_TYPE_TOOL = "tool"  # execute_tool <tool>
SPAN_TYPE_USAGE = "usage"  # record_usage <kind>


def turn_model_config(context: Any) -> Any:
    """The ``ModelConfig`` the current turn runs with, or ``None``.

    No public accessor: AG2 puts the turn's config (the agent's, or the one given to ``ask``) into
    ``context.dependencies`` under ``ag2.utils.MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY``, which its own
    ``MetricsMiddleware`` reads the same way.
    """
    deps = getattr(context, "dependencies", None)
    return deps.get(_model_config_key()) if deps else None


@functools.cache
def _model_config_key() -> str:
    from ag2.utils import MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY

    return MODEL_CONFIG_CONTEXT_DEPENDENCY_KEY


def hook_span(span_type: str) -> Any:
    """The span AG2's ``TelemetryMiddleware`` opened for the hook now running, or ``None``.

    AG2 makes its span current while the middleware inside it run (not documented: the middleware
    could equally open spans without making them current). This reads the current span and checks
    that it is AG2's span for this hook — by the name AG2 gives it, ``{operation} {target}`` after the
    GenAI semantic conventions (``chat offline-1``) — so a span some other middleware opened in between
    is never annotated by mistake; then nothing is annotated. (The name, not the
    :data:`SPAN_TYPE_ATTR` attribute: reading a live span's attributes costs several times more.)
    """
    span = _trace.get_current_span()
    if not span.is_recording():
        return None
    name = getattr(span, "name", None)  # an SDK span; the API's non-recording span has none
    operation = _OPERATION_OF[span_type]
    if not name or not name.startswith(operation) or name[len(operation) : len(operation) + 1] not in ("", " "):
        return None
    return span


#: The GenAI operation that names AG2's span of each span type.
_OPERATION_OF = {
    SPAN_TYPE_AGENT: "invoke_agent",
    SPAN_TYPE_LLM: "chat",
    SPAN_TYPE_TOOL: "execute_tool",
    SPAN_TYPE_USAGE: "record_usage",
}


# ==================================================================================================
# SLOs (agentops.slo)
# ==================================================================================================


@functools.cache
def turn_duration_buckets() -> tuple[float, ...]:
    """Bucket bounds (seconds) of AG2's ``ag2_agent_turn_duration_seconds`` histogram, ``+Inf`` left out.

    A latency SLO must count "slower than the threshold" exactly, so its threshold has to be one of
    these bounds. AG2 exposes them neither as a constant nor through its middleware; they are read
    from a ``MetricsMiddleware`` built on a scratch registry (its private metric container), so they
    follow AG2 when it changes them.
    """
    from ag2.middleware.builtin import MetricsMiddleware
    from prometheus_client import CollectorRegistry

    histogram = MetricsMiddleware(CollectorRegistry())._metrics.agent_turn_duration_seconds
    return tuple(float(b) for b in histogram._upper_bounds if b != float("inf"))
