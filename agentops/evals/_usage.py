"""Tokens and USD spent by one case or one judge call, priced through :mod:`agentops.usage`.

One policy for a model with no known price: its tokens are kept and the cost is ``None`` (reported as
unpriced, with the fix), never an error in the middle of a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ag2.usage import UsageReport

from agentops.usage import cost_usd


@dataclass(frozen=True)
class Spend:
    """Reported tokens and their cost; ``cost_usd`` is ``None`` when any model is unpriced."""

    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    note: str | None = None  # why the cost is unknown

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def spend_of(events: Iterable[Any]) -> Spend | None:
    """Tokens and cost of the ``UsageEvent``s among ``events``; ``None`` when none reported usage."""
    report = UsageReport.from_events(events)
    if not report.records:
        return None
    total, unpriced = 0.0, []
    providers = {r.model: r.provider for r in report.records if r.model}
    for model, usage in report.by_model.items():
        price = cost_usd(usage, model, _provider(providers.get(model)))
        if price is None:
            unpriced.append(model)
        else:
            total += price
    note = None
    if unpriced:
        note = (
            f"unpriced model(s) {sorted(unpriced)}: register a price with "
            f"agentops.pricing.register_price to see the cost"
        )
    elif any(r.model is None for r in report.records):
        note = "usage reported without a model name; cannot price it"
    return Spend(
        int(report.total.prompt_tokens or 0),
        int(report.total.completion_tokens or 0),
        None if note else total,
        note,
    )


def _provider(provider: Any) -> str | None:
    """``ModelProvider.OPENAI`` → ``"openai"``; plain strings pass through."""
    if provider is None:
        return None
    return str(getattr(provider, "value", provider))
