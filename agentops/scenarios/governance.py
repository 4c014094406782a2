"""Chapter 02's offline behaviour: a guarded support agent, an operations assistant, budget workloads.

``guarded_support``: e-mails the first e-mail placeholder it sees, fetches a page when asked, reads a
phone number back in its *answer* when asked for a call-back (an output-side finding for the
guardrails), and otherwise acknowledges the (already redacted) request. ``operations``: one tool call
per request keyword (weather, pay N, read PATH, drop). ``runaway`` answers at length; ``shared_answer``
answers with a few sentences — the workloads of the budget sections.
"""

from __future__ import annotations

import re
from typing import Any

from agentops.models import Prompt, rule, tool_rule
from agentops.scenarios._base import Scenario

__all__ = ["guarded_support", "operations", "runaway", "shared_answer"]

_EMAIL_PLACEHOLDER = re.compile(r"\[EMAIL_ADDRESS_\d+\]")


def _first_email(p: Prompt) -> dict[str, Any]:
    found = _EMAIL_PLACEHOLDER.findall(p.user)
    return {"recipient": found[0] if found else "?", "body": "Your report"}


def _not_after_tools(p: Prompt) -> bool:
    """first call of the turn"""
    return not p.after_tools


def guarded_support() -> Scenario:
    """The guarded support agent of section 2."""
    return Scenario(
        "guarded_support",
        "e-mail and fetch tools on request, a call-back answer that contains a phone number, else an echo",
        (
            tool_rule("send_email", keywords=["email"], arguments=_first_email),
            tool_rule("fetch_page", keywords=["fetch"], arguments={"url": "https://example.com/partners"}),
            rule(
                "call-back",
                "Sure — we will call you back on +1 415 555 2671, the number on file.",
                user_contains=["call"],
                when=_not_after_tools,
            ),
            rule(
                "acknowledge",
                lambda p: f"Noted: {p.user}",
                when=_not_after_tools,
                description="otherwise → 'Noted: <the request as the model received it>'",
            ),
        ),
    )


def _amount(p: Prompt) -> dict[str, Any]:
    digits = re.findall(r"\d+", p.user)
    return {"amount": int(digits[0]) if digits else 0, "to": "acme"}


def operations() -> Scenario:
    """The operations assistant of section 3: one tool call per request keyword."""
    return Scenario(
        "operations",
        "weather → get_weather, pay N → wire_money, read PATH → read_file, drop → drop_database",
        (
            tool_rule("get_weather", keywords=["weather"], arguments={"city": "Lisbon"}),
            tool_rule("wire_money", keywords=["pay"], arguments=_amount),
            tool_rule("read_file", keywords=["read"], arguments=lambda p: {"path": p.user.split()[-1]}),
            tool_rule("drop_database", keywords=["drop"], arguments={}),
        ),
    )


def runaway() -> Scenario:
    """A writer that always answers at length (section 4's runaway conversation)."""
    return Scenario("runaway", "every answer is long", (rule("long answer", "Here is more detail. " * 12),))


def shared_answer() -> Scenario:
    """A worker that answers with a few sentences (section 4's concurrent requests)."""
    return Scenario(
        "shared_answer",
        "every answer is a few sentences",
        (rule("answer", "A concise answer with a few sentences of detail. " * 3),),
    )
