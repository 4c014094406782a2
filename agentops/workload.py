"""Serve a list of questions through an agent and its caches, one cost row per request.

The chapter 05 cost dashboard compares configurations (always-strong, routed, routed + caches) on the
same workload; :func:`run_workload` is the loop it runs: the semantic cache first (if any), then the
agent (whose config may be wrapped by an exact :class:`~agentops.caching.ResponseCache`), recording
where each answer came from, which tier answered and what it cost in USD.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_workload"]


async def run_workload(agent: Any, questions: list[str], *, semantic: Any = None, exact: Any = None) -> Any:
    """Ask each question (semantic cache first, then the agent); one row per request with where the answer
    came from, which tier answered and what it cost (USD).

    A request answered by a model with no known price costs ``None`` (NaN in the frame): unknown, not $0.
    """
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
        costs = [cost_usd(r.usage, r.model) for r in report.records]
        cost = None if any(c is None for c in costs) else sum(costs)
        models = sorted({r.model for r in report.records})
        source = "exact cache" if exact is not None and exact.stats.hits > hits_before else "model"
        tokens = int(report.total.total_tokens or 0)
        rows.append(
            {"question": q, "source": source, "tier": "+".join(models) or "-", "tokens": tokens, "cost_usd": cost}
        )
        if semantic is not None and source == "model":
            semantic.store_answer(q, reply.body)
    return pd.DataFrame(rows)
