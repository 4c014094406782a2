"""Chapter 01's offline behaviour: a support desk's router and specialists, and a code-review workflow.

``desk``: the router answers JSON matching :class:`agentops.graph.RouteDecision`; billing tries a
handoff the graph forbids (to ``admin``), tech hands off to the reviewer, the reviewer finishes, and
a request of gibberish gets prose with no JSON. ``code_review``: every stage answers by the default
rules, with seeded latency (so parallel stages visibly overlap) and seeded transient provider faults
(so retries show up as attempts; which stage is hit depends on the seed, the outcome does not).
"""

from __future__ import annotations

import json
from typing import Any

from agentops.models import Prompt, Reply, ToolCall, rule
from agentops.scenarios._base import Scenario

__all__ = ["code_review", "desk"]


def _route(p: Prompt) -> str:
    if p.mentions("refund", "charged"):
        decision: dict[str, Any] = {"route": "billing", "reason": "payment question", "confidence": 0.93}
    elif p.mentions("crash", "error"):
        decision = {"route": "tech", "reason": "bug report", "confidence": 0.88}
    elif p.mentions("invoice"):
        decision = {"route": "billing", "reason": "invoice copy", "confidence": 0.81}
    else:
        decision = {"route": "tech", "reason": "not sure what this is", "confidence": 0.34}
    return json.dumps(decision)


def _call(name: str, **arguments: Any) -> Any:
    return lambda p: Reply(tool_calls=(ToolCall(name, arguments),))


def _first_turn(p: Prompt) -> bool:
    """first call of the turn"""
    return not p.after_tools


def desk() -> Scenario:
    """The support desk's router and specialists (see the module docstring)."""
    return Scenario(
        "desk",
        "a JSON router, one illegal handoff (billing → admin), tech → reviewer → finish",
        (
            rule(
                "router: prose",
                "Hmm, hard to say. Probably billing?",
                system_contains="You route",
                user_contains=["gibberish"],
            ),
            rule(
                "router: JSON decision",
                _route,
                system_contains="You route",
                description="router → {route, reason, confidence} by keywords (refund, crash, invoice)",
            ),
            rule(
                "billing → admin (illegal)",
                _call("handoff", to="admin", reason="needs refund rights"),
                system_contains="billing support",
                user_contains=["twice"],
                when=_first_turn,
            ),
            rule(
                "tech → reviewer",
                _call("handoff", to="reviewer", reason="please check the fix"),
                system_contains="tech support",
                when=_first_turn,
            ),
            rule(
                "reviewer finishes",
                _call("finish", summary="fix approved"),
                system_contains="reviewer of tech",
                when=_first_turn,
            ),
        ),
    )


def code_review() -> Scenario:
    """The code-review workflow's stage model: default answers, seeded latency and transient faults."""
    return Scenario(
        "code_review",
        "stages answer by the default rules; latency and transient provider faults are drawn from the seed",
        latency_s=(0.02, 0.05),
        faults={"server_error": 0.12, "timeout": 0.08},
    )
