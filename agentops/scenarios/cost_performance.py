"""Chapter 05's offline behaviour and data: a support desk with a cheap and a strong model.

Scenarios (``load_scenario(name, cfg)``; a real provider's config is left alone):

* ``support_cheap`` — the cheap tier (``offline-mini``): knows the FAQ, guesses at arithmetic —
  sometimes confidently wrong, sometimes hedging.
* ``support_strong`` — the strong tier (``offline-large``, 5-16x the price): answers everything.
* ``support_tools`` — the strong answers plus an ``order_status`` tool call whenever a message names an
  order (the conversation the context-window section trims).

Every scenario also answers "summarise" system prompts (the context window's summariser) with the
first sentence of each user turn. The chapter's data lives here too: the eval suite, the mixed
workload, the 7-turn conversation and the near-miss pairs written for the chapter. Prices come from
``agentops.pricing`` (nominal offline prices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agentops.models import OfflineModel, Prompt, Rule, rule, tool_rule
from agentops.scenarios._base import Scenario, load_scenario

__all__ = [
    "CONTEXT_QUESTIONS",
    "CONVERSATION",
    "KNOWLEDGE",
    "NEAR_MISS_PAIRS",
    "SEMANTIC_EXAMPLES",
    "SUPPORT_PROMPT",
    "Fact",
    "chapter_texts",
    "context_suite",
    "embedder",
    "offline_rules_frame",
    "offline_tiers",
    "order_status",
    "support_cheap",
    "support_conversation",
    "support_strong",
    "support_suite",
    "support_tools",
    "workload",
]

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


#: How the offline reader finds each context question's answer in the conversation it is shown.
_RECALL: dict[str, re.Pattern[str]] = {
    "which order number did i give first?": re.compile(r"User: [^\n]*?order number is (\d{4})"),
    "what did i order last week?": re.compile(r"ordered an? ([\w ]+?) last week"),
    "which order was a birthday present?": re.compile(r"order (\d{4})\? It was a birthday present"),
    "where am i moving next month?": re.compile(r"ship to (\w+)\? I move there"),
}


def _recall(p: Prompt) -> str:
    """Answer a question about the conversation from the transcript in the system prompt, or 'not stated'."""
    pattern = _RECALL.get(p.user.strip().lower())
    found = pattern.search(p.system) if pattern else None
    return found.group(1) if found else "not stated"


def _rules(strong: bool) -> tuple[Rule, ...]:
    return (
        Rule(
            "read the conversation",
            lambda p: "answer the question from the conversation" in p.system.lower(),
            _recall,
            "question about the conversation → the fact if the transcript shown still holds it, else 'not stated'",
        ),
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
    )


def support_cheap() -> Scenario:
    """The cheap tier: FAQ answers right, arithmetic guessed or hedged."""
    return Scenario(
        "support_cheap", "the cheap model's scripted answers (FAQ right, hard questions wrong)", _rules(False)
    )


def support_strong() -> Scenario:
    """The strong tier: every scripted question answered right."""
    return Scenario("support_strong", "the strong model's scripted answers (every question right)", _rules(True))


def _order_id(p: Prompt) -> dict[str, str]:
    return {"order_id": re.findall(r"\d{4}", p.user)[-1]}


def _answer_order(p: Prompt) -> str:
    return " ".join(r.content for r in p.tool_results) or "I could not find that order."


def support_tools() -> Scenario:
    """The strong answers plus an ``order_status`` call whenever a message names an order number."""
    return Scenario(
        "support_tools",
        "order_status tool call for messages naming an order, its result read back, else the strong answers",
        (
            tool_rule("order_status", keywords=["order"], arguments=_order_id),
            rule(
                "read the order back",
                _answer_order,
                when=lambda p: p.after_tools,
                description="after the tool → the tool's result",
            ),
            *_rules(True),
            rule(
                "small talk",
                "Happy to help.",
                when=lambda p: not p.after_tools,
                description="anything else → a short acknowledgement",
            ),
        ),
    )


def offline_tiers(**options: Any) -> list[Any]:
    """``[Tier("cheap"), Tier("strong")]`` over offline models with this chapter's scenarios (tests, benchmarks)."""
    from agentops.routing import Tier

    cheap, strong = OfflineModel("offline-mini", **options), OfflineModel("offline-large", **options)
    load_scenario("support_cheap", cheap)
    load_scenario("support_strong", strong)
    return [Tier("cheap", cheap), Tier("strong", strong)]


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


def support_suite(limit: int | None = None) -> Any:
    """The routing eval suite: every scripted question (or ``limit`` of them, half FAQ and half hard),
    passing when the answer holds the expected text."""
    from agentops.evals import EvalSuite

    facts = KNOWLEDGE
    if limit is not None:
        faq, hard = [f for f in KNOWLEDGE if not f.hard], [f for f in KNOWLEDGE if f.hard]
        facts = (*faq[: (limit + 1) // 2], *hard[: limit // 2])

    cases = [
        {
            "id": f.id,
            "prompt": f.question,
            "tags": ["hard" if f.hard else "faq"],
            "assert": [{"type": "contains_any", "values": [f.expect]}],
        }
        for f in facts
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


async def support_conversation(config: Any, *, turns: int | None = None) -> list[Any]:
    """Walk :data:`CONVERSATION` (its first ``turns`` messages, default all) with a support agent holding
    ``order_status``; returns its history events.

    Offline, give ``config`` the ``support_tools`` scenario first (``load_scenario("support_tools", cfg)``).
    """
    import ag2

    agent = ag2.Agent("support", SUPPORT_PROMPT, config=config, tools=[order_status])
    reply = await agent.ask(CONVERSATION[0])
    for text in CONVERSATION[1:turns]:
        reply = await reply.ask(text)
    return list(await reply.history.get_events())


#: Questions about the conversation's early turns, asked after it (answer quality under each window).
CONTEXT_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("Which order number did I give first?", "1001"),
    ("What did I order last week?", "lamp"),
    ("Which order was a birthday present?", "1002"),
    ("Where am I moving next month?", "Canada"),
)


def context_suite(limit: int | None = None) -> Any:
    """Questions whose answers sit in the conversation's early turns (the first ``limit`` of them, default
    all): does a trimmed window keep them?"""
    from agentops.evals import EvalSuite

    cases = [
        {"id": f"recall-{i}", "prompt": q, "assert": [{"type": "contains_any", "values": [want]}]}
        for i, (q, want) in enumerate(CONTEXT_QUESTIONS[:limit], 1)
    ]
    return EvalSuite(name="context-recall", cases=cases)


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


#: The chapter's semantic-match examples (the notebook shows the same pairs).
SEMANTIC_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("What is the capital of France?", "What is the capital of Germany?"),
    ("Is shipping faster than pickup?", "Is pickup faster than shipping?"),
    ("Do you ship to Canada?", "Do you deliver to Canada?"),
    ("Can I get a refund after 30 days?", "Can I get a refund after 60 days?"),
)

_TABLE = "ch05_minilm.npz"


def chapter_texts() -> list[str]:
    """Every text the chapter embeds: its questions, their rewordings, the examples and near-miss pairs."""
    texts = [f.question for f in KNOWLEDGE] + workload(400, seed=0)
    texts += [t for pair in SEMANTIC_EXAMPLES for t in pair] + [t for _, a, b in NEAR_MISS_PAIRS for t in (a, b)]
    return list(dict.fromkeys(texts))


def embedder() -> Any:
    """MiniLM's vectors for :func:`chapter_texts`, precomputed and shipped with the package, so the chapter
    does not load the model (seconds of CPU); any other text loads MiniLM (or the hashing fallback).

    Rebuild after changing the chapter's texts::

        PrecomputedEmbedder.save("agentops/data/ch05_minilm.npz", MiniLMEmbedder(), chapter_texts())
    """
    from importlib.resources import files

    from agentops.caching import PrecomputedEmbedder

    return PrecomputedEmbedder(str(files("agentops") / "data" / _TABLE))
