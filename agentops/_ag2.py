"""Every coupling to AG2 beyond its documented public API, each with a contract test.

Each section names what it relies on; ``tests/test_ag2_contract.py`` checks it against the pinned AG2,
so an AG2 upgrade that changes the behaviour fails there, by name, rather than somewhere in a chapter.
"""

from __future__ import annotations

import json
from typing import Any

from ag2.events import ModelResponse, ToolApprovalRequest, ToolCallEvent

# ==================================================================================================
# Tool approvals (agentops.tools.Approver)
# ==================================================================================================
# A ToolApprovalRequest carries one structured field about its call, ``tool_call_id``; the tool's name
# and arguments are only in the prose of ``content``. We do not parse the prose: the model's
# ToolCallEvent is already in the stream's history (published before any tool runs) and is found by
# that id. Relied on: (1) ``ToolApprovalRequest.tool_call_id`` equals ``ToolCallEvent.id``; (2) the
# ToolCallEvent (or the ModelResponse carrying it) is in ``context.stream.history`` when the hook runs.


async def approval_call(event: ToolApprovalRequest, context: Any) -> ToolCallEvent | None:
    """The tool call an approval request is about, looked up by ``tool_call_id``; None if not found."""
    stream = getattr(context, "stream", None)
    history = getattr(stream, "history", None)
    if history is None or not getattr(event, "tool_call_id", None):
        return None
    events = list(await history.get_events())
    for e in reversed(events):
        if isinstance(e, ToolCallEvent) and e.id == event.tool_call_id:
            return e
        if isinstance(e, ModelResponse) and e.tool_calls is not None:
            for call in e.tool_calls.calls:
                if call.id == event.tool_call_id:
                    return call
    return None


def call_arguments(call: ToolCallEvent) -> dict[str, Any]:
    """A tool call's arguments as a dict ({} when the model sent something that is not a JSON object)."""
    try:
        args = json.loads(call.arguments or "{}")
    except (TypeError, ValueError):
        return {}
    return args if isinstance(args, dict) else {}
