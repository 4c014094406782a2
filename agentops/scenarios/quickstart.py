"""Chapter 00's offline behaviour: a support agent that looks orders up and phrases the result.

The order answers are what the chapter asserts on, so they never depend on the seed; the answer to a
question the tools cannot help with is one of several equivalent phrasings, picked by the seed, and so
is each call's simulated latency.
"""

from __future__ import annotations

import json
import re

from agentops.models import Prompt, rule, tool_rule
from agentops.scenarios._base import Scenario

__all__ = ["ADDRESS_ANSWERS", "scenario"]

_ORDER_ID = re.compile(r"\b[A-Z]{2}-\d{4}\b", re.IGNORECASE)

ADDRESS_ANSWERS = (
    "I can't change a delivery address myself; please reply with the new address and a colleague will update it.",
    "Address changes need a person: send the new address here and our team will update the order.",
    "I'm not able to edit addresses, but our support team can — share the new address and they'll take it from there.",
)
"""Equivalent answers to a request the tools cannot serve; the seed picks one."""


def _order_id(p: Prompt) -> dict[str, str]:
    m = _ORDER_ID.search(p.user)
    return {"order_id": m.group(0) if m else ""}


def _order_answer(p: Prompt) -> str:
    """Phrase lookup_order's JSON result as a sentence."""
    order = json.loads(p.tool_results[0].content)
    if "error" in order:
        return f"Sorry, I could not find that order ({order['error']})."
    carrier = f" with {order['carrier']}" if order.get("carrier") else ""
    return f"Order {order['order_id']} is {order['status']}{carrier}, expected on {order['eta']}."


def _after_lookup(p: Prompt) -> bool:
    """after lookup_order returns"""
    return p.after_tools and p.tool_results[0].name == "lookup_order"


def scenario() -> Scenario:
    """The quickstart scenario (see the module docstring)."""
    return Scenario(
        "quickstart",
        "order questions call lookup_order; other requests get one of several equivalent hand-offs",
        (
            tool_rule("lookup_order", keywords=["order"], arguments=_order_id),
            rule(
                "answer from order data",
                _order_answer,
                when=_after_lookup,
                description="after lookup_order returns → phrase the order's status",
            ),
            rule(
                "address change",
                lambda p: p.rng.choice(ADDRESS_ANSWERS),
                user_contains=["address"],
                description="user mentions 'address' → one of 3 equivalent hand-offs (the seed picks)",
            ),
        ),
        latency_s=(0.005, 0.03),
    )
