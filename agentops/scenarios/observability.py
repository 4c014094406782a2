"""Chapter 04's offline behaviour: a support service's router and specialists under seeded faults.

The router answers a :class:`agentops.graph.RouteDecision` (billing for invoice, refund and charge
questions, tech otherwise); the billing specialist looks the invoice up with its tool. Every call has
0.3–2 s of simulated latency, recorded but not waited for (the chapter's simulated clock turns it into
timestamps), and 5 % of calls fail with a rate limit, a server error or a timeout — which calls fail
is drawn from the seed.
"""

from __future__ import annotations

import json
import re

from agentops.models import Prompt, rule, tool_rule
from agentops.scenarios._base import Scenario

__all__ = ["service"]

_BILLING = ("invoice", "charged", "refund", "bill")


def _route(p: Prompt) -> str:
    billing = p.mentions(*_BILLING)
    return json.dumps(
        {"route": "billing" if billing else "tech", "reason": "keywords", "confidence": 0.9 if billing else 0.8}
    )


def _invoice(p: Prompt) -> dict[str, str]:
    found = re.findall(r"\d+", p.user)
    return {"invoice_id": found[0] if found else "0"}


def service() -> Scenario:
    """The support service's router and specialists (see the module docstring)."""
    return Scenario(
        "service",
        "a JSON router (billing vs tech) and an invoice tool, with seeded latency and provider faults",
        (
            rule(
                "route",
                _route,
                system_contains="router",
                description="router → {route, reason, confidence}: billing if invoice/charged/refund/bill",
            ),
            tool_rule("lookup_invoice", keywords=list(_BILLING), arguments=_invoice),
        ),
        latency_s=(0.3, 2.0),
        faults={"rate_limit": 0.02, "server_error": 0.02, "timeout": 0.01},
        sleep=False,
    )
