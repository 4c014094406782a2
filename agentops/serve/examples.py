"""The chapter 08 support agent and its offline rules (what the notebook and tests serve).

:func:`support_agent` is a ``module:factory`` for ``python -m agentops serve``; with a Redis URL its
token budget lives in a :class:`~agentops.budgets.RedisLedger`, so two service processes share it.
"""

from __future__ import annotations

import os
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.models import OfflineModel, Prompt, Rule, rule

__all__ = ["SUPPORT_PROMPT", "offline_rules", "support_agent"]

SUPPORT_PROMPT = "You are the support agent of ACME. Answer in one short sentence."


def _answer(p: Prompt) -> str:
    text = p.user.lower()
    if "refund" in text:
        return "Refunds are paid within 5 business days."
    if "hours" in text:
        return "We are open 9:00-17:00 CET, Monday to Friday."
    return "ACME support: please describe your order problem."


def offline_rules(version: str = "v1") -> list[Rule]:
    """The offline answers; version ``v2`` (a canary candidate) prefixes its answers with ``[v2]``."""
    if version == "v1":
        return [rule("support answer", _answer, system_contains="support agent of ACME")]
    return [rule(f"support answer {version}", lambda p: f"[{version}] " + _answer(p), system_contains="ACME")]


def support_agent(
    redis_url: str | None = None,
    *,
    version: str = "v1",
    max_tokens: int | None = None,
    latency_s: float = 0.0,
    prefix: str = "agentops-serve",
    ledger: Any = None,
) -> Any:
    """An offline support agent with a global token budget (Redis-shared when ``redis_url`` is given).

    ``redis_url`` defaults to ``AGENTOPS_SERVE_REDIS_URL``; without one the budget is per process.
    ``max_tokens`` defaults to ``AGENTOPS_SERVE_MAX_TOKENS`` (else 2000); ``ledger`` overrides both.
    """
    import ag2
    from redis import Redis

    from agentops.budgets import Budget, BudgetMiddleware, InProcessLedger, RedisLedger

    redis_url = redis_url or os.environ.get("AGENTOPS_SERVE_REDIS_URL")
    model = OfflineModel(seed=0, rules=offline_rules(version), latency_s=latency_s, sleep=latency_s > 0)
    if ledger is None:
        ledger = RedisLedger(Redis.from_url(redis_url), prefix=prefix) if redis_url else InProcessLedger()
    max_tokens = max_tokens or int(os.environ.get("AGENTOPS_SERVE_MAX_TOKENS", "2000"))
    budget = BudgetMiddleware(
        ledger,
        agent="support",
        budgets=[Budget("service-tokens", scope="global", max_tokens=max_tokens)],
        model=model,
        max_completion_tokens=64,
    )
    return ag2.Agent("support", SUPPORT_PROMPT, config=model, middleware=[budget])
