"""A tiny support bot: one tool, one structured router. The app a reader tests in chapter 09.

The app code is what runs against a real provider; ``offline_model()`` holds the offline model's rules
for it, so tests and the notebook run without a network.
"""

from __future__ import annotations

import json
import re
from typing import Literal

import ag2
from pydantic import BaseModel

from agentops.models import OfflineModel, json_rule, tool_rule
from agentops.toolguard import ToolCallGuard

ORDERS = {
    "AB-1234": {"status": "shipped", "carrier": "DHL"},
    "CD-5678": {"status": "processing", "carrier": None},
}
ORDER_ID = re.compile(r"\b[A-Z]{2}-\d{4}\b")
ROUTER_PROMPT = "You are a router. Classify the customer message as billing, shipping or other."


class Route(BaseModel):
    """Where a customer message goes."""

    route: Literal["billing", "shipping", "other"]


def lookup_order(order_id: str) -> str:
    """Look up an order's status by its id (like AB-1234)."""
    order = ORDERS.get(order_id.strip().upper())
    return json.dumps(order) if order else json.dumps({"error": f"unknown order {order_id!r}"})


def build_agent(config, *, max_tool_rounds: int = 3) -> ag2.Agent:
    """The support agent: answers order questions with the lookup tool, guarded against bad tool calls."""
    return ag2.Agent(
        "support",
        "You are a concise support assistant. Use lookup_order for order questions.",
        config=config,
        tools=[lookup_order],
        middleware=[ToolCallGuard(max_tool_rounds)],
    )


async def route(config, message: str) -> Route:
    """Classify a message with structured output (the server falls back if it rejects json_schema)."""
    reply = await ag2.Agent("router", ROUTER_PROMPT, config=config).ask(message, response_schema=Route)
    return await reply.content()


def _offline_route(p) -> dict:
    text = p.user.lower()
    if any(w in text for w in ("refund", "charged", "invoice")):
        return {"route": "billing"}
    return {"route": "shipping" if any(w in text for w in ("order", "parcel", "delivery")) else "other"}


def offline_model(seed: int = 0) -> OfflineModel:
    """The offline model with this app's rules (a router answering JSON, order questions calling the tool)."""
    model = OfflineModel(seed=seed)
    model.add_rule(json_rule("route", _offline_route, system_contains="you are a router"))
    model.add_rule(
        tool_rule(
            "lookup_order",
            keywords=["order"],
            arguments=lambda p: {"order_id": (ORDER_ID.findall(p.user.upper()) or ["?"])[0]},
        )
    )
    return model


def eval_agent(variant: str = "baseline") -> ag2.Agent:
    """Target for `python -m agentops eval`: the offline support agent (a 'regressed' variant drops the tool)."""
    agent = build_agent(offline_model())
    if variant == "regressed":
        return ag2.Agent("support", "You are a concise support assistant.", config=offline_model())
    return agent
