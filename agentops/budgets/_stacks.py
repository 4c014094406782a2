"""Booked vs spent under any middleware order: one audit that the tests, the benchmark and the chapter share.

:func:`audit_stack` runs a scripted offline conversation through an ``ag2.Agent`` whose middleware is
built from names — ``"budget"`` plus any of ``"history"`` (AG2 ``HistoryLimiter``), ``"tokens"``
(``TokenLimiter``), ``"retry"`` (``RetryMiddleware`` on provider faults) and ``"guardrails"``
(:class:`agentops.guardrails.GuardrailMiddleware`) — in the order given, with simulated rate limits and
truncated answers, then compares what the model really served (its own call log, priced per call) with
what the ledger booked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentops.budgets._ledger import BudgetExceeded, InProcessLedger, Ledger, to_nano
from agentops.budgets._middleware import Budget, BudgetMiddleware
from agentops.errors import ConfigError

COMPONENTS = ("budget", "history", "tokens", "retry", "guardrails")
_PROMPTS = ("What's the weather in Paris?", "Tell me more.", "And in Oslo? Check the weather.", "Go on.")


@dataclass(frozen=True)
class StackAudit:
    """What one audited run served and booked (USD in nano-dollars, exact)."""

    stack: tuple[str, ...]
    model_calls: int  # calls the model answered (faults that raised cost nothing and are not counted)
    charged_calls: int  # attempts the budget settled
    spent_tokens: int
    booked_tokens: int
    spent_nano_usd: int
    booked_nano_usd: int
    max_reservation_tokens: int
    cap_tokens: int
    refused: int
    overruns: int

    @property
    def uncharged_calls(self) -> int:
        """Model calls the ledger never charged (must be 0)."""
        return self.model_calls - self.charged_calls

    @property
    def overshoot_tokens(self) -> int:
        """Tokens the model served beyond the cap (must be 0 while every call stays within its reservation)."""
        return max(0, self.spent_tokens - self.cap_tokens)


def _stack(names: Sequence[str], agent: str, budget: BudgetMiddleware) -> list[Any]:
    from ag2.middleware import HistoryLimiter, RetryMiddleware, TokenLimiter

    from agentops.guardrails import GuardrailMiddleware
    from agentops.models import ProviderTimeout, RateLimitError, ServerError

    make = {
        "budget": lambda: budget,
        "history": lambda: HistoryLimiter(3),
        "tokens": lambda: TokenLimiter(120),
        "retry": lambda: RetryMiddleware(max_retries=4, retry_on=(RateLimitError, ServerError, ProviderTimeout)),
        "guardrails": lambda: GuardrailMiddleware(agent),
    }
    unknown = [n for n in names if n not in make]
    if unknown or list(names).count("budget") != 1:
        raise ConfigError(f"a stack names 'budget' once and otherwise only {COMPONENTS[1:]}, got {list(names)}")
    return [make[n]() for n in names]


def _model(seed: int, fault_rate: float) -> Any:
    from agentops.models import Faults, OfflineModel, rule, tool_rule

    cfg = OfflineModel(seed=seed, faults=Faults(rate_limit=fault_rate, malformed=fault_rate / 2))
    cfg.add_rule(tool_rule("get_weather", keywords=["weather"], arguments={"city": "Paris"}))
    cfg.add_rule(rule("long answer", lambda p: "Here is more detail on that. " * 6))
    return cfg


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


async def _converse(agent: Any, turns: int) -> int:
    """Run ``turns`` user messages; a refusal or an exhausted retry starts a new conversation."""
    refused, reply = 0, None
    for i in range(turns):
        text = _PROMPTS[i % len(_PROMPTS)]
        try:
            reply = await (reply.ask(text) if reply is not None else agent.ask(text))
        except BudgetExceeded:
            refused += 1
            reply = None
        except Exception:  # a provider fault that outlived the retries (or had none): start over
            reply = None
    return refused


async def audit_stack(
    stack: Sequence[str],
    *,
    ledger: Ledger | None = None,
    seed: int = 0,
    turns: int = 12,
    cap_tokens: int = 6_000,
    fault_rate: float = 0.2,
    budget_type: type[BudgetMiddleware] = BudgetMiddleware,
) -> StackAudit:
    """Run one scripted conversation through ``stack`` and compare booked with spent.

    Args:
        stack: component names in middleware order, ``"budget"`` exactly once (see :data:`COMPONENTS`).
        ledger: the ledger to book on (a fresh :class:`InProcessLedger` by default); its accounts
            should be empty, e.g. a :class:`RedisLedger` with a prefix of its own.
        seed: offline model seed (which calls fault, what they say).
        turns: user messages sent.
        cap_tokens: the global token cap (low enough and the run ends in refusals).
        fault_rate: per-call probability of a simulated rate limit (half as many truncated answers).
        budget_type: the budget middleware to audit (a :class:`BudgetMiddleware` subclass to compare).

    >>> import asyncio
    >>> audit = asyncio.run(audit_stack(["history", "budget", "retry"], turns=4))
    >>> audit.uncharged_calls, audit.booked_tokens == audit.spent_tokens, audit.overshoot_tokens
    (0, True, 0)
    """
    import ag2

    from agentops.pricing import cost

    ledger = ledger if ledger is not None else InProcessLedger()
    cfg = _model(seed, fault_rate)
    budget = budget_type(
        ledger,
        agent="auditor",
        model=cfg,
        budgets=[Budget("stack", scope="global", max_tokens=cap_tokens, max_usd=1.0)],
        max_completion_tokens=200,
    )
    agent = ag2.Agent(
        "auditor",
        "You answer questions; use tools for the weather.",
        config=cfg,
        tools=[get_weather],
        middleware=_stack(stack, "auditor", budget),
    )
    refused = await _converse(agent, turns)
    served = [r for r in cfg.calls_frame().itertuples() if r.fault not in ("rate_limit", "timeout", "server_error")]
    spent_nano = sum(to_nano(cost(_Usage(r.prompt_tokens, r.completion_tokens), cfg.model)) for r in served)
    frame = budget.usage_frame()
    row = next((r for r in ledger.accounts() if r["budget"] == "stack"), None) or {}
    return StackAudit(
        stack=tuple(stack),
        model_calls=len(served),
        charged_calls=int((frame.outcome == "ok").sum()),
        spent_tokens=sum(int(r.prompt_tokens + r.completion_tokens) for r in served),
        booked_tokens=int(row.get("spent_tokens", 0)),
        spent_nano_usd=spent_nano,
        booked_nano_usd=int(row.get("spent_nano_usd", 0)),
        max_reservation_tokens=int(frame.estimate_tokens.max()) if len(frame) else 0,
        cap_tokens=cap_tokens,
        refused=refused,
        overruns=ledger.overruns(),
    )


@dataclass(frozen=True)
class _Usage:
    prompt_tokens: int
    completion_tokens: int
