"""Token, cost and request budgets for AG2 agents, enforced *before* each model call.

AG2 v1 reports tokens but has no cost and no budget middleware. :class:`BudgetMiddleware` adds both in
AG2's middleware shape (a factory configured once, an instance per turn). On every ``on_llm_call`` it

1. estimates the call — prompt tokens from the events about to be sent plus ``max_completion_tokens``
   for the answer, priced by :mod:`agentops.pricing` — and **reserves** that amount against every
   applicable :class:`Budget` in one atomic step (all or nothing), under an id minted for this call;
2. makes the call;
3. **settles** the actual usage from the response (releasing the difference), or releases the whole
   reservation if the call failed.

Because the reservation is atomic, concurrent calls can never jointly pass a cap: a call is refused with
:class:`BudgetExceeded` (a :class:`agentops.errors.RefusalError`) *before* it costs anything, and the sum
of what was let through never exceeds the cap as long as each call's actual cost is within its estimate
(set ``max_completion_tokens`` to the ``max_tokens`` your provider enforces). A call whose actual cost
exceeded its estimate is still recorded truthfully, and counted in ``overruns()``.

The reservation's identity is the call, never the history: trimming middleware in front of the budget
(``HistoryLimiter``, ``TokenLimiter``) cannot make two calls look alike, and a key reused with other
amounts is an error. Amounts are finite and non-negative at every boundary (budgets, ledger lines,
reported usage): a bad value is a :class:`agentops.errors.ConfigError` naming the fix.

Budgets have an explicit scope — one conversation (the AG2 stream), one agent, or global — and either a
lifetime or a time window (``window_s``: calendar windows for tokens/USD, a sliding window for
``max_requests``, i.e. requests per minute). One factory shared by several agents still keeps per-agent
budgets per agent.

Two ledgers implement the same protocol: :class:`InProcessLedger` (a lock; threads and asyncio tasks of
one process) and :class:`RedisLedger` (Lua scripts; several processes or replicas), whose reservations
are leased so that a process killed mid-call gives its reservation back after ``lease_s``.

Example::

    ledger = InProcessLedger()
    budgets = [Budget("conversation", scope="conversation", max_usd=0.01),
               Budget("rpm", scope="agent", max_requests=60, window_s=60)]
    agent = ag2.Agent("writer", config=cfg, middleware=[BudgetMiddleware(ledger, agent="writer",
                                                                         model=cfg, budgets=budgets)])
"""

from __future__ import annotations

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.budgets._ledger import (
    NANO_USD,
    BudgetExceeded,
    InProcessLedger,
    Ledger,
    Line,
    Reservation,
    to_nano,
)
from agentops.budgets._middleware import Budget, BudgetMiddleware
from agentops.budgets._redis import RedisLedger
from agentops.budgets._stacks import StackAudit, audit_stack

__all__ = [
    "NANO_USD",
    "Budget",
    "BudgetExceeded",
    "BudgetMiddleware",
    "InProcessLedger",
    "Ledger",
    "Line",
    "RedisLedger",
    "Reservation",
    "StackAudit",
    "audit_stack",
    "to_nano",
]
