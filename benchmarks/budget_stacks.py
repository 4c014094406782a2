"""Budgets under random middleware stacks: what the ledger booked vs what the model served.

Each trial builds one ``ag2.Agent`` whose middleware is ``BudgetMiddleware`` plus a random subset of
AG2's ``HistoryLimiter`` and ``TokenLimiter``, AG2's ``RetryMiddleware`` and our guardrails, in random
order, and runs a scripted offline conversation with simulated rate limits and truncated answers
against a global token cap (``agentops.budgets.audit_stack``). The model's own call log, priced per
call, is the ground truth; the ledger must match it exactly: no call uncharged, no token over the cap.

The baseline, measured in the same run on the same stacks and seeds, keys each reservation by the
conversation and its position in the history (the scheme this package used before): a trimming
middleware in front of the budget makes positions repeat, and a repeated key reads as "already paid".

    python benchmarks/budget_stacks.py            # AGENTOPS_BENCH_REDIS_URL picks the Redis database
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from typing import Any

from agentops.budgets import BudgetExceeded, BudgetMiddleware, InProcessLedger, RedisLedger, audit_stack
from agentops.budgets._middleware import _BudgetTurn
from agentops.budgets._stacks import COMPONENTS
from agentops.errors import ConfigError

STACKS = 40
REDIS_STACKS = 12
TURNS = 12
CAP_TOKENS = 2_500


class _PositionTurn(_BudgetTurn):
    """The replaced scheme: key = conversation + agent + number of events about to be sent."""

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> Any:
        f = self.f
        stream_id = str(context.stream.id)
        key = f"{stream_id}|{f.agent}|{len(events)}"
        usd, tokens = f.estimate(events, context)
        head = (f.next_call(), 1, f.agent, f._conversation_label(stream_id))
        try:
            res = f.ledger.reserve(key, f.lines(stream_id, usd, tokens, time.time()))
        except BudgetExceeded as exc:
            f._record(*head, "refused", exc.budget, usd / 1e9, tokens, 0.0, 0)
            raise
        except ConfigError:  # settled earlier with other amounts: the old ledger answered "already paid"
            res = None
        if res is None or not res.fresh:
            resp = await call_next(events, context)
            f._record(*head, "uncharged", None, usd / 1e9, tokens, 0.0, 0)
            return resp
        try:
            resp = await call_next(events, context)
        except BaseException:
            f.ledger.release(key)
            raise
        usage = resp.usage
        actual = f.cost_usd(usage, resp.model, resp.provider)
        f.ledger.settle(key, round(actual * 1e9), (usage.prompt_tokens or 0) + (usage.completion_tokens or 0))
        f._record(*head, "ok", None, usd / 1e9, tokens, actual, 0)
        return resp


class PositionKeyed(BudgetMiddleware):
    def __call__(self, event: Any, context: Any) -> Any:
        return _PositionTurn(event, context, self)


def stacks(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        chosen = [c for c in COMPONENTS[1:] if rng.random() < 0.6] + ["budget"]
        rng.shuffle(chosen)
        out.append(chosen)
    return out


async def run(orders: list[list[str]], make_ledger: Any, budget_type: type[BudgetMiddleware]) -> dict[str, Any]:
    audits = []
    for i, order in enumerate(orders):
        ledger = make_ledger()
        audits.append(
            await audit_stack(order, ledger=ledger, seed=i, turns=TURNS, cap_tokens=CAP_TOKENS, budget_type=budget_type)
        )
    calls = sum(a.model_calls for a in audits)
    return {
        "stacks": len(audits),
        "calls": calls,
        "uncharged": sum(a.uncharged_calls for a in audits),
        "tokens": sum(a.booked_tokens for a in audits) / max(1, sum(a.spent_tokens for a in audits)),
        "usd": sum(a.booked_nano_usd for a in audits) / max(1, sum(a.spent_nano_usd for a in audits)),
        "mismatched": sum(a.booked_tokens != a.spent_tokens or a.booked_nano_usd != a.spent_nano_usd for a in audits),
        "overshoots": sum(a.overshoot_tokens > 0 for a in audits),
        "over_tokens": sum(a.overshoot_tokens for a in audits),
    }


def show(label: str, ledger: str, r: dict[str, Any]) -> None:
    print(
        f"| {label} | {ledger} | {r['stacks']} | {r['calls']:,} | {r['uncharged']:,} | {r['tokens']:.3f} | "
        f"{r['usd']:.3f} | {r['mismatched']} | {r['overshoots']} ({r['over_tokens']:,} tokens) |"
    )


async def main() -> None:
    orders = stacks(STACKS, seed=7)
    trimmed_first = sum(any(c in o[: o.index("budget")] for c in ("history", "tokens")) for o in orders)
    print(
        f"{STACKS} random stacks ({trimmed_first} with a history trimmer in front of the budget), {TURNS} turns "
        f"each, global cap {CAP_TOKENS:,} tokens, 20% simulated rate limits + 10% truncated answers\n"
    )
    print(
        "| reservation key | ledger | stacks | model calls | uncharged calls | booked/spent tokens "
        "| booked/spent USD | stacks booked ≠ spent | stacks over the cap |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    show("call id (minted per call)", "in-process", await run(orders, InProcessLedger, BudgetMiddleware))
    show("history position (baseline)", "in-process", await run(orders, InProcessLedger, PositionKeyed))
    try:
        import redis

        client = redis.Redis.from_url(os.environ.get("AGENTOPS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
        client.ping()
    except Exception as exc:
        print(f"Redis not reachable ({exc.__class__.__name__}): Redis rows skipped (start it with `make services`)")
        return
    prefix = f"bench-stacks-{uuid.uuid4().hex[:8]}"
    counter = iter(range(10**6))

    def redis_ledger() -> RedisLedger:
        return RedisLedger(client, prefix=f"{prefix}-{next(counter)}")

    try:
        show("call id (minted per call)", "Redis", await run(orders[:REDIS_STACKS], redis_ledger, BudgetMiddleware))
        show("history position (baseline)", "Redis", await run(orders[:REDIS_STACKS], redis_ledger, PositionKeyed))
    finally:
        for key in client.scan_iter(match=f"{{{prefix}-*", count=1000):
            client.delete(key)


if __name__ == "__main__":
    asyncio.run(main())
