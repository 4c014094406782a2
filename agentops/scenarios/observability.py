"""Chapter 04's offline behaviour: a support service's router and specialists under seeded faults.

The router answers a :class:`agentops.graph.RouteDecision` (billing for invoice, refund and charge
questions, tech otherwise); the billing specialist looks the invoice up with its tool. Every call has
0.3–2 s of simulated latency, recorded but not waited for (the chapter's simulated clock turns it into
timestamps), and 5 % of calls fail with a rate limit, a server error or a timeout — which calls fail
is drawn from the seed.

:class:`FailedRequests` keeps why each request of the chapter's workload failed — the error class
and a one-line reason — so a run on a real model explains its failures instead of only counting them.
The telemetry span of a failed request records the error class; the reason is kept here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentops.models import Prompt, rule, tool_rule
from agentops.scenarios._base import Scenario

__all__ = ["FailedRequests", "failure_reason", "service"]

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


def failure_reason(exc: BaseException, limit: int = 120) -> str:
    """The first line of an error's message, whitespace collapsed, redacted and cut to ``limit`` characters.

    An error with no message is named by its class alone, so a table never shows an empty reason.

    >>> failure_reason(TimeoutError("router exceeded 60 s\\ntraceback..."))
    'router exceeded 60 s'
    >>> failure_reason(KeyError())
    '(KeyError with no message)'
    """
    from agentops.guardrails import redact

    lines = [" ".join(line.split()) for line in str(exc).splitlines()]
    first = next((line for line in lines if line), "")
    if not first:
        return f"({type(exc).__name__} with no message)"
    first = redact(first)
    return first if len(first) <= limit else first[: limit - 1] + "…"


class FailedRequests:
    """Why each failed request of a workload failed: request number, error class, one-line reason.

    Not thread-safe: one workload loop records into it.

    >>> failed = FailedRequests()
    >>> failed.record(3, TimeoutError("no answer within 30 s"))
    >>> print(failed)
    request  error         reason
          3  TimeoutError  no answer within 30 s
    >>> len(failed), str(FailedRequests())
    (1, 'no request failed')
    """

    COLUMNS = ("request", "error", "reason")

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record(self, request: int, exc: BaseException) -> None:
        """Note that request number ``request`` failed with ``exc``."""
        self.rows.append({"request": request, "error": type(exc).__name__, "reason": failure_reason(exc)})

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self) -> Any:
        """A pandas DataFrame with one row per failed request (empty, with its columns, when none failed)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.COLUMNS))

    def __str__(self) -> str:
        """A left-aligned text table (reasons are long; right-aligned they would be hard to read)."""
        if not self.rows:
            return "no request failed"
        width = max(len("error"), *(len(r["error"]) for r in self.rows))
        lines = [f"request  {'error':<{width}}  reason"]
        lines += [f"{r['request']:>7}  {r['error']:<{width}}  {r['reason']}" for r in self.rows]
        return "\n".join(lines)
