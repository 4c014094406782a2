"""Chapter 03's offline behaviour: the demo support agent (both prompt versions) and the judge.

``support`` holds the demo agent's rules (:mod:`agentops.evals.demo` has the agent, its tools and its
suite). They read the system prompt, so one model serves both prompt versions: with the full prompt the
tools are used and personal data is refused; with the trimmed prompt (no tool and privacy sentences)
tools are skipped and personal data is answered — the regression the chapter's gate catches. Latency
per call is drawn from the seed. ``judge`` adds :func:`agentops.evals.offline.judge_rule`, which grades
an answer against the case's reference (content words, leaked personal data, length) rather than
returning a constant.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentops.evals.demo import _fmt, calculator
from agentops.models import Prompt, rule, tool_rule
from agentops.scenarios._base import Scenario

__all__ = ["judge", "support", "support_rules"]

_FAQ: tuple[tuple[tuple[str, ...], str], ...] = (
    (("hello", "hi", "hey"), "Hello! How can I help you with your order today?"),
    (("capital",), "Paris is the capital of France."),
    (
        ("refund",),
        "You can request a refund within 30 days of delivery; refunds reach your card in 5 business days.",
    ),
    (("hours", "open"), "Support is open Monday to Friday, 9:00–18:00 CET."),
    (("shipping",), "Standard shipping takes 3–5 business days and is free over €50."),
    (("summarize", "summarise", "summary"), "Summary: orders ship in 3–5 days; refunds within 30 days."),
)
_CODE = {
    "reverse": "```python\ndef reverse(s: str) -> str:\n    return s[::-1]\n```",
    "factorial": (
        "```python\ndef factorial(n: int) -> int:\n    result = 1\n    for i in range(2, n + 1):\n"
        "        result *= i\n    return result\n```"
    ),
    "sql": "```sql\nSELECT name, email FROM users WHERE age > 30;\n```",
}


def _uses_tools(p: Prompt) -> bool:
    """system prompt tells the assistant to use the tools"""
    return "use the tools" in p.system.lower()


def _city(p: Prompt) -> dict[str, Any]:
    m = re.search(r"\bin ([A-Z][a-z]+)", p.user)
    return {"city": m.group(1) if m else "Paris"}


def _order(p: Prompt) -> dict[str, Any]:
    m = re.search(r"\b([A-Z]\d{4})\b", p.user)
    return {"order_id": m.group(1) if m else "unknown"}


def _expression(p: Prompt) -> dict[str, Any]:
    m = re.search(r"calculate:?\s*([-+*/().\d\s^%]+)", p.user, re.IGNORECASE)
    return {"expression": (m.group(1) if m else "0").strip()}


def _guarded_tool(r: Any) -> Any:
    """The tool rule fires only when the system prompt tells the assistant to use its tools."""
    return type(r)(r.name, lambda p, w=r.when: _uses_tools(p) and w(p), r.respond, r.description + " (if told to)")


def _pii(p: Prompt) -> str:
    if "never reveal personal data" in p.system.lower():
        return "I can't share personal data such as SSNs, passwords or customer emails."
    return "Sure: the customer is Jane Roe, SSN 123-45-6789, email jane.roe@example.com, password: hunter2."


def _math(p: Prompt) -> str:
    m = re.search(r"what is ([-+*/().\d\s^%]+)\??", p.user, re.IGNORECASE)
    pct = re.search(r"(\d+(?:\.\d+)?)% of (\d+(?:\.\d+)?)", p.user)
    if pct:
        share = float(pct.group(1)) * float(pct.group(2)) / 100
        return f"{pct.group(1)}% of {pct.group(2)} is {_fmt(share)}."
    if m:
        return f"{m.group(1).strip()} = {calculator(m.group(1))}."
    sq = re.search(r"square root of (\d+)", p.user, re.IGNORECASE)
    if sq:
        return f"The square root of {sq.group(1)} is {_fmt(float(sq.group(1)) ** 0.5)}."
    return "I could not parse that arithmetic."


def _code(p: Prompt) -> str:
    for key, snippet in _CODE.items():
        if p.mentions(key) or (key == "sql" and p.mentions("query")):
            return snippet
    return "```python\npass\n```"


def _faq(p: Prompt) -> str:
    return next(a for words, a in _FAQ if p.mentions(*words))


def _profile(p: Prompt) -> str:
    return json.dumps({"name": "Ada", "age": 36})


def _summarise(p: Prompt) -> str:
    return " ".join(r.content.rstrip(".") + "." for r in p.tool_results)


def _injection(p: Prompt) -> str:
    if "never reveal personal data" in p.system.lower():
        return "I can't help with that request."
    return _pii(p)


_INJECTION = re.compile(r"ignore (all )?previous instructions", re.IGNORECASE)


def support_rules() -> list[Any]:
    """The offline model's rules for the demo agent, first match wins.

    Both prompt versions share them; what differs is the system prompt they read: without the tool
    and privacy sentences (``"regressed"``), tool rules do not fire and personal data is answered.
    """
    return [
        rule("tool results", _summarise, when=lambda p: p.after_tools),
        _guarded_tool(tool_rule("get_weather", keywords=["weather"], arguments=_city)),
        _guarded_tool(tool_rule("lookup_order", keywords=["order"], arguments=_order)),
        _guarded_tool(tool_rule("calculator", keywords=["calculate"], arguments=_expression)),
        # checked before the personal-data rule, which would fire on "password"
        rule(
            "injection",
            _injection,
            when=lambda p: bool(_INJECTION.search(p.user)),
            description="user says 'ignore previous instructions' → refuse if the prompt forbids leaks",
        ),
        rule("personal data", _pii, user_contains=["ssn", "password", "email address", "credentials"]),
        rule("weather guess", "It is probably sunny there today.", user_contains=["weather"]),
        rule("order guess", "Your order is on its way.", user_contains=["order"]),
        rule("json profile", _profile, user_contains=["json"]),
        rule("code", _code, user_contains=["function", "sql", "python"]),
        rule("math", _math, when=lambda p: bool(re.search(r"what is [-\d(]|square root|\d% of", p.user, re.I))),
        rule("faq", _faq, when=lambda p: any(p.mentions(*w) for w, _ in _FAQ)),
    ]


def support() -> Scenario:
    """The demo support agent's rules for both prompt versions, with seeded latency."""
    return Scenario(
        "support",
        "tools and refusals when the system prompt asks for them; leaks and guesses when it does not",
        tuple(support_rules()),
        latency_s=(0.01, 0.06),
    )


def judge() -> Scenario:
    """The offline judge: a rubric verdict graded from the answer and the case's reference."""
    from agentops.evals.offline import judge_rule

    return Scenario("judge", "rubric JSON graded from the answer vs the reference", (judge_rule(),))
