"""What every telemetry module shares: its error and the hook events it records."""

from __future__ import annotations

from collections.abc import Mapping

from agentops.errors import AgentOpsError
from agentops.listeners import (
    BUDGET_REFUSED,
    ESCALATION,
    GUARDRAIL_FINDING,
    HANDOFF_REFUSED,
    MALFORMED_ANSWER,
    PAYLOAD_KEYS,
    TOOL_DENIED,
)

__all__ = ["EVENT_KINDS", "TelemetryError"]

#: The hook's event kinds that telemetry turns into metrics, span events and WARNING log lines, with
#: their payload keys (any other kind becomes a span event and an INFO line).
EVENT_KINDS: Mapping[str, tuple[str, ...]] = {
    k: PAYLOAD_KEYS[k]
    for k in (GUARDRAIL_FINDING, TOOL_DENIED, BUDGET_REFUSED, ESCALATION, HANDOFF_REFUSED, MALFORMED_ANSWER)
}


class TelemetryError(AgentOpsError):
    """Telemetry was configured or used in a way that cannot work; the message names the fix."""
