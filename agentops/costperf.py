"""Chapter 05's offline scenario: a support desk with a cheap and a strong model, its eval suite and a
mixed workload. The visible notebook code is what a reader writes for a real provider; the offline
models' scripted answers live here and print with :func:`offline_rules_frame`.

Tiers: ``offline-mini`` (cheap) knows the FAQ and guesses at arithmetic — sometimes confidently wrong,
sometimes hedging; ``offline-large`` (5-16× the price) answers everything. Prices come from
``agentops.pricing`` (nominal offline prices).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentops.models import OfflineModel, Prompt, Rule, model_config

__all__ = ["KNOWLEDGE", "SUPPORT_PROMPT", "Fact", "offline_rules_frame", "support_suite", "tiers", "workload"]

SUPPORT_PROMPT = "You are a support assistant for an online shop. Answer in one or two sentences."


@dataclass(frozen=True)
class Fact:
    """One scripted question: its keywords, the strong answer, the cheap model's answer, what a pass contains."""

    id: str
    question: str
    keywords: tuple[str, ...]
    strong: str
    cheap: str
    expect: str
    hard: bool = False


KNOWLEDGE: tuple[Fact, ...] = (
    Fact(
        "hours",
        "What are your opening hours?",
        ("opening hours",),
        "We are open 9am to 5pm, Monday to Friday.",
        "We are open 9am to 5pm, Monday to Friday.",
        "9am",
    ),
    Fact(
        "password",
        "How do I reset my password?",
        ("reset my password",),
        "Use the 'Forgot password' link on the sign-in page.",
        "Click 'Forgot password' on the sign-in page.",
        "Forgot password",
    ),
    Fact(
        "canada",
        "Do you ship to Canada?",
        ("ship to canada",),
        "Yes, we ship to Canada in 5-7 business days.",
        "Yes, we ship to Canada.",
        "Canada",
    ),
    Fact(
        "refund",
        "What is your refund policy?",
        ("refund policy",),
        "You can get a refund within 30 days of purchase.",
        "Refunds are accepted within 30 days.",
        "30 days",
    ),
    Fact(
        "invoice",
        "Where can I find my invoice?",
        ("my invoice",),
        "Invoices are under Account > Billing.",
        "Look under Account > Billing.",
        "Billing",
    ),
    Fact(
        "address",
        "Can I change my delivery address?",
        ("delivery address",),
        "Yes, until the order ships: Orders > Edit.",
        "Yes, under Orders > Edit before it ships.",
        "Edit",
    ),
    Fact(
        "student",
        "Is there a student discount?",
        ("student discount",),
        "Yes, 10% with a valid student email.",
        "Yes, students get 10% off.",
        "10%",
    ),
    Fact(
        "tax",
        "Calculate the total for 3 items at $19.99 with 8% tax.",
        ("19.99",),
        "3 × $19.99 = $59.97, plus 8% tax = $64.77.",
        "The total is $59.97.",
        "$64.77",
        hard=True,
    ),
    Fact(
        "coupon",
        "Explain why my total dropped after a 15% coupon on an $80 order.",
        ("coupon",),
        "15% of $80 is $12, so the total is $68.00.",
        "The coupon gives free shipping.",
        "$68",
        hard=True,
    ),
    Fact(
        "plans",
        "Compare the Basic and Pro plans for a team of 12 users.",
        ("basic and pro",),
        "Basic is $120/month and Pro is $240/month for 12 users; Pro adds SSO.",
        "I'm not sure about team pricing.",
        "$240",
        hard=True,
    ),
    Fact(
        "parcels",
        "Estimate shipping for 4 parcels of 2.5 kg each to Canada.",
        ("parcels",),
        "10 kg in total: $35 to Canada.",
        "Shipping is $10.",
        "$35",
        hard=True,
    ),
    Fact(
        "damaged",
        "My package arrived damaged and the replacement is broken too, what now?",
        ("damaged",),
        "We will refund you in full and email a prepaid return label.",
        "I'm not sure what to do in this case.",
        "refund",
        hard=True,
    ),
)


def _answer(strong: bool) -> Any:
    def respond(p: Prompt) -> str:
        low = p.user.lower()
        for fact in KNOWLEDGE:
            if any(k in low for k in fact.keywords):
                return fact.strong if strong else fact.cheap
        return "Could you tell me a bit more about your question?"

    return respond


def _summary(p: Prompt) -> str:
    """A deterministic 'summary': the first sentence of each user turn in the text to summarise."""
    lines = [ln.removeprefix("User: ").split(".")[0] for ln in p.user.splitlines() if ln.startswith("User: ")]
    return "Summary of earlier turns: " + "; ".join(lines) if lines else "Summary: (nothing to summarise)"


def _rules(strong: bool) -> list[Rule]:
    return [
        Rule(
            "summarise",
            lambda p: "summarise" in p.system.lower(),
            _summary,
            "system prompt asks to summarise → first sentence of each user turn",
        ),
        Rule(
            "support answer",
            lambda p: "support assistant" in p.system.lower() and not p.after_tools,
            _answer(strong),
            f"support question → the {'strong' if strong else 'cheap'} model's scripted answer",
        ),
    ]


def tiers(llm_backend: str = "offline", cheap: str | None = None, strong: str | None = None, **options: Any) -> Any:
    """``[Tier(cheap), Tier(strong)]`` for a backend; offline tiers carry this scenario's rules."""
    from agentops.routing import Tier

    if llm_backend == "offline":
        return [
            Tier("cheap", OfflineModel(cheap or "offline-mini", rules=_rules(False), **options)),
            Tier("strong", OfflineModel(strong or "offline-large", rules=_rules(True), **options)),
        ]
    return [
        Tier("cheap", model_config(llm_backend, cheap, **options)),
        Tier("strong", model_config(llm_backend, strong, **options)),
    ]


def offline_rules_frame() -> Any:
    """The scripted questions and both models' answers as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "id": f.id,
                "hard": f.hard,
                "question": f.question,
                "cheap model says": f.cheap,
                "strong model says": f.strong,
            }
            for f in KNOWLEDGE
        ]
    ).set_index("id")


def support_suite() -> Any:
    """The routing eval suite: every scripted question, passing when the answer holds the expected text."""
    from agentops.evals import EvalSuite

    cases = [
        {
            "id": f.id,
            "prompt": f.question,
            "tags": ["hard" if f.hard else "faq"],
            "assert": [{"type": "contains_any", "values": [f.expect]}],
        }
        for f in KNOWLEDGE
    ]
    return EvalSuite(name="support-routing", cases=cases)


def workload(n: int = 60, seed: int = 0) -> list[str]:
    """A repeated mixed workload: FAQ questions recur (some reworded), hard ones less often."""
    import random

    rng = random.Random(seed)
    rewordings = {
        "hours": "When are you open?",
        "password": "how can I reset my password",
        "canada": "Do you deliver to Canada?",
        "refund": "what's your refund policy",
        "invoice": "Where do I find my invoice?",
    }
    out = []
    for _ in range(n):
        fact = rng.choice(KNOWLEDGE[:7]) if rng.random() < 0.8 else rng.choice(KNOWLEDGE[7:])
        out.append(rewordings[fact.id] if fact.id in rewordings and rng.random() < 0.3 else fact.question)
    return out


CONVERSATION = (
    "Hi, I ordered a desk lamp last week and want to check on it. My order number is 1001.",
    "Thanks. Can you also check order 1002? It was a birthday present.",
    "What is your refund policy?",
    "And do you ship to Canada? I move there next month.",
    "Please check order 1003 too.",
    "Where can I find my invoice?",
    "One more: what are your opening hours?",
)


def order_status(order_id: str) -> str:
    """Look up an order's delivery status."""
    return f"order {order_id}: shipped, arriving in 2 days"


async def support_conversation(config: Any = None) -> list[Any]:
    """A 7-turn support conversation with three order-lookup tool rounds; returns its history events."""
    import re

    import ag2

    from agentops.models import tool_rule

    if config is None:
        config = OfflineModel("offline-1", rules=_rules(True))
        config.add_rule(
            tool_rule(
                "order_status", keywords=["order"], arguments=lambda p: {"order_id": re.findall(r"\d{4}", p.user)[-1]}
            ),
            first=True,
        )
    agent = ag2.Agent("support", SUPPORT_PROMPT, config=config, tools=[order_status])
    reply = await agent.ask(CONVERSATION[0])
    for text in CONVERSATION[1:]:
        reply = await reply.ask(text)
    return list(await reply.history.get_events())


#: Near-miss and paraphrase question pairs written for this chapter (label 1 = same answer).
NEAR_MISS_PAIRS: tuple[tuple[int, str, str], ...] = (
    (1, "What is the capital of France?", "Which city is the capital of France?"),
    (0, "What is the capital of France?", "What is the capital of Germany?"),
    (1, "How do I reset my password?", "How can I reset my password?"),
    (0, "How do I reset my password?", "How do I reset my username?"),
    (1, "Do you ship to Canada?", "Do you deliver to Canada?"),
    (0, "Do you ship to Canada?", "Do you ship to Mexico?"),
    (1, "What is your refund policy?", "What's your policy on refunds?"),
    (0, "Can I get a refund after 30 days?", "Can I get a refund after 60 days?"),
    (1, "What are your opening hours?", "When are you open?"),
    (0, "Are you open on Monday?", "Are you open on Sunday?"),
    (1, "Where can I find my invoice?", "Where do I find my invoice?"),
    (0, "Is shipping faster than pickup?", "Is pickup faster than shipping?"),
    (1, "How long does delivery to Canada take?", "How many days does shipping to Canada take?"),
    (0, "Can I cancel my order?", "Can't I cancel my order?"),
    (1, "Is there a student discount?", "Do students get a discount?"),
    (0, "Is the Pro plan cheaper than Basic?", "Is the Pro plan more expensive than Basic?"),
    (1, "Can I change my delivery address?", "Can I update my delivery address?"),
    (0, "Convert 5 km to miles", "Convert 5 miles to km"),
    (1, "How do I contact support?", "How can I reach customer support?"),
    (0, "What was revenue in 2023?", "What was revenue in 2024?"),
)


async def run_workload(agent: Any, questions: list[str], *, semantic: Any = None, exact: Any = None) -> Any:
    """Ask each question (semantic cache first, then the agent); one row per request with where the answer
    came from, which tier answered and what it cost (USD)."""
    import pandas as pd

    from agentops.usage import cost_usd

    rows = []
    for q in questions:
        hit = semantic.lookup(q) if semantic is not None else None
        if hit is not None and hit.answer is not None:
            rows.append({"question": q, "source": "semantic cache", "tier": "-", "tokens": 0, "cost_usd": 0.0})
            continue
        hits_before = exact.stats.hits if exact is not None else 0
        reply = await agent.ask(q)
        report = await reply.usage()
        cost = sum(cost_usd(r.usage, r.model) or 0.0 for r in report.records)
        models = sorted({r.model for r in report.records})
        source = "exact cache" if exact is not None and exact.stats.hits > hits_before else "model"
        tokens = int(report.total.total_tokens or 0)
        rows.append(
            {"question": q, "source": source, "tier": "+".join(models) or "-", "tokens": tokens, "cost_usd": cost}
        )
        if semantic is not None and source == "model":
            semantic.store_answer(q, reply.body)
    return pd.DataFrame(rows)
