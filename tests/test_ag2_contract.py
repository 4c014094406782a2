"""Contract tests: each AG2 behaviour that agentops/_ag2.py relies on, checked against the pinned AG2.

An AG2 upgrade that changes one of these fails here, by name, before any chapter breaks.
"""

from __future__ import annotations

import ag2
from ag2.events import ToolApprovalRequest, ToolErrorEvent
from ag2.middleware import BaseMiddleware, Middleware
from ag2.middleware.builtin.tools import approval_required

from agentops._ag2 import approval_call, call_arguments
from agentops.models import OfflineModel, tool_rule

# -- Tool approvals ---------------------------------------------------------------------------------


def wire_money(amount: int, to: str) -> str:
    """Send money."""
    return f"sent {amount} to {to}"


async def test_an_approval_request_names_a_call_that_is_already_in_the_history() -> None:
    """ToolApprovalRequest.tool_call_id is the ToolCallEvent.id, and that call is in the stream's
    history when the hitl hook runs; a hook object's ``context`` parameter is injected by type."""
    found: list[tuple[str, dict, str]] = []

    class Hook:
        async def __call__(self, event, context):
            call = await approval_call(event, context)
            found.append((call.name, call_arguments(call), type(event).__name__))
            return "y"

    Hook.__call__.__annotations__ = {"event": ToolApprovalRequest, "context": ag2.Context, "return": str}
    cfg = OfflineModel(seed=0)
    cfg.add_rule(tool_rule("wire_money", keywords=["pay"], arguments={"amount": 5, "to": "bob"}))
    tool = ag2.tool(wire_money, middleware=[approval_required()])
    reply = await ag2.Agent("a", "Help.", config=cfg, tools=[tool], hitl_hook=Hook()).ask("pay bob")
    assert found == [("wire_money", {"amount": 5, "to": "bob"}, "ToolApprovalRequest")]
    assert reply.body == "wire_money returned: sent 5 to bob."


def test_call_arguments_tolerates_what_a_model_may_send() -> None:
    from ag2.events import ToolCallEvent

    assert call_arguments(ToolCallEvent("t", id="1", arguments='{"a": 1}')) == {"a": 1}
    assert call_arguments(ToolCallEvent("t", id="2", arguments="[1, 2]")) == {}
    assert call_arguments(ToolCallEvent("t", id="3", arguments='{"a": ')) == {}


# -- Tool errors (agentops.tools authorizer) ------------------------------------------------------------


class _Seen(BaseMiddleware):
    def __init__(self, event, context, seen: list) -> None:
        super().__init__(event, context)
        self.seen = seen

    async def on_tool_execution(self, call_next, event, context):
        result = await call_next(event, context)
        self.seen.append(result)
        return result


async def test_a_raising_tool_reaches_agent_middleware_as_a_tool_error_event_carrying_the_exception() -> None:
    def explode() -> str:
        """Explode."""
        raise PermissionError("sealed")

    seen: list = []
    cfg = OfflineModel(seed=1)
    cfg.add_rule(tool_rule("explode", keywords=["boom"], arguments={}))
    await ag2.Agent("a", "Help.", config=cfg, tools=[explode], middleware=[Middleware(_Seen, seen=seen)]).ask("boom")
    (result,) = seen
    assert isinstance(result, ToolErrorEvent) and isinstance(result.error, PermissionError)
    assert str(result.error) == "sealed"
