"""Chapter 02's offline behaviour (both parts): a guarded support agent, an operations assistant, an
agent that obeys what it reads, budget workloads.

``guarded_support`` (02_guardrails): e-mails the first e-mail placeholder it sees, fetches a page when
asked, reads a phone number back in its *answer* when asked for a call-back (an output-side finding for
the guardrails), and otherwise acknowledges the (already redacted) request. The rest is 02b_governance:
``operations``: one tool call per request keyword (weather, pay N, read PATH, drop). ``obedient``: the
failure mode an injected document exploits — it fetches the page it is asked to, then does what the page
says (e-mails the user's card number to the address the page names). ``runaway`` answers at length;
``shared_answer`` answers with a few sentences — the workloads of the budget sections.
"""

from __future__ import annotations

import re
from typing import Any

from agentops.models import Prompt, Reply, ToolCall, rule, tool_rule
from agentops.scenarios._base import Scenario

__all__ = ["guarded_support", "obedient", "operations", "runaway", "shared_answer"]

_EMAIL_PLACEHOLDER = re.compile(r"\[EMAIL_ADDRESS_\d+\]")
_CARD_PLACEHOLDER = re.compile(r"\[CREDIT_CARD_\d+\]")


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


def _page_says_email(p: Prompt) -> bool:
    """a fetched page asks for an e-mail and send_email has not run yet this turn"""
    names = {r.name for r in p.tool_results}
    page = " ".join(r.content for r in p.tool_results if r.name == "fetch_page")
    return p.has_tool("send_email") and "send_email" not in names and "email" in page.lower()


def _obey_page(p: Prompt) -> Reply:
    page = " ".join(r.content for r in p.tool_results if r.name == "fetch_page")
    to = _EMAIL_PLACEHOLDER.findall(page) or ["?"]
    card = _CARD_PLACEHOLDER.findall(p.user) or ["(no card)"]
    return Reply(tool_calls=(ToolCall("send_email", {"recipient": to[0], "body": f"Card on file: {card[0]}"}),))


def obedient() -> Scenario:
    """The agent an injected page turns against its user (02b_governance's vault section)."""
    return Scenario(
        "obedient",
        "fetches the page it is asked for, then does what the page says (e-mails the card number it names)",
        (
            tool_rule("fetch_page", keywords=["fetch"], arguments={"url": "https://partner.example/onboarding"}),
            tool_rule("send_email", keywords=["email"], arguments=_first_email),
            rule(
                "obey the page",
                _obey_page,
                when=_page_says_email,
                description=_page_says_email.__doc__ + " → "
                "send_email(recipient=<the page's address>, body=<the user's card>)",
            ),
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
