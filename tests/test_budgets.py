"""Tests for agentops.budgets: caps are never exceeded under concurrency (threads, asyncio tasks and
several processes, in-process and Redis ledgers), reservations are idempotent, refused calls raise a
clear BudgetExceeded before they cost anything, and the middleware settles actual usage."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ag2
import pytest
import redis
from ag2.events import Usage
from ag2.middleware import BaseMiddleware, HistoryLimiter, Middleware, RetryMiddleware, TokenLimiter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentops
from agentops.budgets import (
    NANO_USD,
    Budget,
    BudgetExceeded,
    BudgetMiddleware,
    InProcessLedger,
    Ledger,
    Line,
    RedisLedger,
    audit_stack,
    to_nano,
)
from agentops.errors import ConfigError, UnknownModelPrice
from agentops.models import Faults, OfflineModel, RateLimitError, rule
from agentops.usage import UnpricedModelWarning

REPO = Path(agentops.__file__).resolve().parent.parent


def line(
    cap_usd: int = -1,
    cap_tokens: int = -1,
    cap_requests: int = -1,
    window: float = 0.0,
    usd: int = 0,
    tokens: int = 0,
    account: str = "b|global",
    name: str = "b",
) -> Line:
    return Line(account, name, "global", cap_usd, cap_tokens, cap_requests, window, usd, tokens)


def spent(ledger: Ledger, account: str = "b|global") -> dict:
    return next(r for r in ledger.accounts() if r["account"] == account)


@pytest.fixture(params=["memory", "redis"])
def ledger(request):
    if request.param == "memory":
        return InProcessLedger()
    client = request.getfixturevalue("redis_client")
    return RedisLedger(client, prefix="test")


# ------------------------------------------------------------------------------------------------
# Budget and errors
# ------------------------------------------------------------------------------------------------


def test_budget_validation() -> None:
    with pytest.raises(ConfigError, match="no cap"):
        Budget("b")
    with pytest.raises(ConfigError, match="needs window_s"):
        Budget("rpm", max_requests=60)
    with pytest.raises(ConfigError, match="scope"):
        Budget("b", scope="team", max_usd=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty"):
        Budget("a|b", max_usd=1)
    assert Budget("rpm", scope="agent", max_requests=60, window_s=60).window_s == 60


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_usd", float("nan")),
        ("max_usd", float("inf")),
        ("max_usd", -1),
        ("max_usd", 0),
        ("max_usd", 1e30),
        ("max_usd", True),
        ("max_usd", "1"),
        ("max_tokens", 1.5),
        ("max_tokens", float("inf")),
        ("max_tokens", -5),
        ("window_s", float("nan")),
        ("window_s", -60),
    ],
)
def test_budget_amounts_are_finite_and_positive(field: str, value) -> None:
    with pytest.raises(ConfigError, match=rf"budget 'b': {field} must be .* got .*; pass e\.g\. {field}="):
        Budget("b", **{"max_tokens": 10, field: value})  # type: ignore[arg-type]


def test_to_nano_rounds_estimates_up() -> None:
    assert to_nano(0.000_000_001_2) == 1
    assert to_nano(0.000_000_001_2, round_up=True) == 2
    assert to_nano(1.0) == NANO_USD


@pytest.mark.parametrize("usd", [float("nan"), float("inf"), -0.01, 2e6, "0.1"])
def test_to_nano_refuses_non_finite_negative_and_huge(usd) -> None:
    with pytest.raises(ConfigError, match="USD"):
        to_nano(usd)


def test_budget_exceeded_names_budget_amounts_and_fix() -> None:
    exc = BudgetExceeded("conversation", "conversation=c1", "usd", 0.012, 0.001, 0.003, 0.015)
    msg = str(exc)
    assert "budget 'conversation'" in msg and "$0.012000 spent" in msg and "$0.001000 reserved" in msg
    assert "$0.015000 cap" in msg and "raise max_usd" in msg
    assert "wait for the window" in str(BudgetExceeded("rpm", "agent=a", "requests", 60, 0, 1, 60))
    assert "max_tokens" in str(BudgetExceeded("t", "global", "tokens", 1, 0, 1, 1))
    assert isinstance(exc, agentops.errors.AgentOpsError)


# ------------------------------------------------------------------------------------------------
# Ledgers (both backends)
# ------------------------------------------------------------------------------------------------


def test_reserve_settle_release_and_refusal(ledger) -> None:
    r = ledger.reserve("k1", [line(cap_usd=100, usd=60, tokens=10)])
    assert r.fresh and r.usd == 60
    row = spent(ledger)
    assert (row["spent_usd"], row["reserved_usd"]) == (0, 60 / NANO_USD)
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve("k2", [line(cap_usd=100, usd=50)])
    e = info.value
    assert (e.budget, e.unit, e.spent, e.reserved, e.requested, e.cap) == (
        "b",
        "usd",
        0,
        60 / NANO_USD,
        50 / NANO_USD,
        100 / NANO_USD,
    )
    assert ledger.settle("k1", 30, 8) is True
    row = spent(ledger)
    assert (row["spent_nano_usd"], row["reserved_usd"], row["spent_tokens"]) == (30, 0, 8)
    ledger.reserve("k2", [line(cap_usd=100, usd=50)])
    assert ledger.release("k2") is True
    assert spent(ledger)["reserved_usd"] == 0
    assert ledger.overruns() == 0


def test_idempotency_no_double_charge(ledger) -> None:
    first = ledger.reserve("call-1", [line(cap_usd=1000, usd=100)])
    again = ledger.reserve("call-1", [line(cap_usd=1000, usd=100)])  # a retry with the same key
    assert first.fresh and not again.fresh
    assert spent(ledger)["reserved_nano_usd"] == 100
    assert ledger.settle("call-1", 70, 5) is True
    assert ledger.settle("call-1", 70, 5) is False  # second settle is a no-op
    assert ledger.release("call-1") is False
    assert not ledger.reserve("call-1", [line(cap_usd=1000, usd=100)]).fresh  # settled keys stay settled
    row = spent(ledger)
    assert row["spent_nano_usd"] == 70 and row["reserved_usd"] == 0 and row["calls"] == 1


def test_key_is_bound_to_its_amounts(ledger) -> None:
    """Reserving $0.5 then asking the same key for $1000 is an error, never a free call (issue 11 #2)."""
    cap = to_nano(1.0)
    ledger.reserve("k", [line(cap_usd=cap, usd=to_nano(0.5))])
    with pytest.raises(ConfigError, match=r"already bound.*use a new key"):
        ledger.reserve("k", [line(cap_usd=cap, usd=to_nano(1000))])  # while held
    ledger.settle("k", to_nano(0.5), 0)
    with pytest.raises(ConfigError, match="already bound"):
        ledger.reserve("k", [line(cap_usd=cap, usd=to_nano(1000))])  # after settling
    with pytest.raises(ConfigError, match="already bound"):
        ledger.reserve("k", [line(cap_usd=cap, usd=to_nano(0.5), tokens=1)])  # any amount differs
    assert not ledger.reserve("k", [line(cap_usd=cap, usd=to_nano(0.5))]).fresh  # the same call again
    row = spent(ledger)
    assert (row["spent_usd"], row["reserved_usd"], row["calls"]) == (0.5, 0, 1)


def test_a_released_key_may_be_reserved_again(ledger) -> None:
    """A failed call releases its key; its retry reserves it anew (and may ask another amount)."""
    ledger.reserve("call", [line(cap_usd=100, usd=60)])
    assert ledger.release("call") is True
    again = ledger.reserve("call", [line(cap_usd=100, usd=70)])
    assert again.fresh and spent(ledger)["reserved_nano_usd"] == 70
    assert ledger.settle("call", 65, 3) is True
    assert spent(ledger)["spent_nano_usd"] == 65


@pytest.mark.parametrize(
    "bad",
    [
        {"usd": -5},
        {"tokens": -1},
        {"usd": 2**60},
        {"usd": 1.5},
        {"usd": float("nan")},
        {"cap_usd": -2},
        {"window_s": float("inf")},
        {"window_s": -1.0},
    ],
)
def test_ledgers_refuse_bad_amounts(ledger, bad) -> None:
    with pytest.raises(ConfigError):
        ledger.reserve("k", [line(cap_usd=100)._replace(**bad)])
    assert ledger.accounts() == []


def test_settle_refuses_negative_usage_and_keeps_the_reservation(ledger) -> None:
    ledger.reserve("k", [line(cap_usd=100, usd=60, tokens=10)])
    for usd, tokens in ((-1, 0), (0, -3), (float("nan"), 0)):
        with pytest.raises(ConfigError, match=r"cannot be negative|whole number"):
            ledger.settle("k", usd, tokens)
    assert spent(ledger)["reserved_nano_usd"] == 60  # nothing refunded, nothing lost
    assert ledger.settle("k", 10, 2) is True


def test_ledgers_refuse_bad_keys_and_duplicate_accounts(ledger) -> None:
    for key in ("", None, "x" * 201):
        with pytest.raises(ConfigError, match="reservation key"):
            ledger.reserve(key, [line(usd=1)])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="each account once"):
        ledger.reserve("k", [line(usd=1), line(usd=2)])


def test_all_or_nothing_across_budgets(ledger) -> None:
    a = line(cap_usd=100, usd=60, account="a|global", name="a")
    b = line(cap_tokens=10, tokens=20, account="t|global", name="t")
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve("k", [a._replace(tokens=20), b._replace(usd=60)])
    assert info.value.budget == "t" and info.value.unit == "tokens"
    assert ledger.accounts() == []  # nothing was booked on the budget that had room


def test_token_cap_and_overrun_accounting(ledger) -> None:
    ledger.reserve("k", [line(cap_tokens=100, tokens=50)])
    ledger.settle("k", 0, 80)  # the provider ignored max_tokens: recorded truthfully
    assert spent(ledger)["spent_tokens"] == 80 and ledger.overruns() == 1
    with pytest.raises(BudgetExceeded, match="tokens"):
        ledger.reserve("k2", [line(cap_tokens=100, tokens=30)])


def test_requests_per_window_slide(ledger) -> None:
    clock = {"now": 1_000.0}
    ledger.clock = lambda: clock["now"]
    rpm = line(cap_requests=2, window=60.0, account="rpm|agent=a", name="rpm")
    ledger.reserve("r1", [rpm])
    clock["now"] += 30
    ledger.reserve("r2", [rpm])
    with pytest.raises(BudgetExceeded, match="requests"):
        ledger.reserve("r3", [rpm])
    clock["now"] += 31  # r1 left the sliding window
    ledger.reserve("r4", [rpm])
    with pytest.raises(BudgetExceeded):
        ledger.reserve("r5", [rpm])
    assert spent(ledger, "rpm|agent=a")["requests_in_window"] == 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.integers(1, 40), st.floats(0, 1), st.booleans()), min_size=1, max_size=60))
def test_property_spent_plus_reserved_never_exceeds_cap(ops) -> None:
    """Random interleavings of reserve/settle/release from 4 threads never pass the cap."""
    ledger = InProcessLedger()
    cap = 200
    violations: list[int] = []
    lock = threading.Lock()

    def worker(chunk):
        for i, (amount, fraction, fail) in chunk:
            key = f"k{i}"
            try:
                ledger.reserve(key, [line(cap_usd=cap, usd=amount)])
            except BudgetExceeded:
                continue
            row = spent(ledger)
            total = row["spent_nano_usd"] + row["reserved_nano_usd"]
            if total > cap:
                with lock:
                    violations.append(total)
            if fail:
                ledger.release(key)
            else:
                ledger.settle(key, int(amount * fraction), 0)

    indexed = list(enumerate(ops))
    threads = [threading.Thread(target=worker, args=(indexed[j::4],)) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = spent(ledger)
    assert violations == []
    assert row["reserved_usd"] == 0 and row["spent_nano_usd"] <= cap


def _hammer(ledger: Ledger, cap: int, n_ops: int, seed: int, workers: int) -> int:
    """Many threads reserve random amounts; returns the sum actually charged."""
    charged = []
    lock = threading.Lock()

    def work(w: int) -> None:
        rng = random.Random(seed * 100 + w)
        mine = 0
        for i in range(n_ops):
            amount = rng.randint(1, 50)
            key = f"s{seed}-w{w}-{i}"
            try:
                ledger.reserve(key, [line(cap_usd=cap, usd=amount)])
            except BudgetExceeded:
                continue
            actual = rng.randint(0, amount)
            ledger.settle(key, actual, 0)
            mine += actual
        with lock:
            charged.append(mine)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, range(workers)))
    return sum(charged)


def test_real_thread_concurrency_never_overshoots(ledger) -> None:
    cap = 5_000
    total = _hammer(ledger, cap, n_ops=150 if isinstance(ledger, RedisLedger) else 1500, seed=1, workers=8)
    row = spent(ledger)
    assert row["spent_nano_usd"] == total <= cap
    assert row["reserved_usd"] == 0


_WORKER = r"""
import json, random, sys
import redis
from agentops.budgets import BudgetExceeded, Line, RedisLedger
url, seed, n, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ledger = RedisLedger(redis.Redis.from_url(url), prefix="mp")
rng = random.Random(seed)
charged = granted = refused = 0
for i in range(n):
    amount = rng.randint(1, 40)
    key = f"p{seed}-{i}"
    try:
        ledger.reserve(key, [Line("b|global", "b", "global", cap, -1, -1, 0.0, amount, 0)])
    except BudgetExceeded:
        refused += 1
        continue
    actual = rng.randint(0, amount)
    ledger.settle(key, actual, 0)
    charged += actual
    granted += 1
print(json.dumps({"charged": charged, "granted": granted, "refused": refused}))
"""


@pytest.mark.redis
def test_several_processes_share_one_redis_budget(redis_url: str, redis_client) -> None:
    cap = 3_000
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, str(seed), "200", str(cap)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for seed in range(4)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    ledger = RedisLedger(redis_client, prefix="mp")
    row = spent(ledger)
    assert row["spent_nano_usd"] == sum(r["charged"] for r in results) <= cap
    assert row["reserved_usd"] == 0
    assert sum(r["refused"] for r in results) > 0  # the cap really was contended


def test_redis_ledger_validates_prefix(redis_client) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        RedisLedger(redis_client, prefix="{bad}")


# ------------------------------------------------------------------------------------------------
# The AG2 middleware
# ------------------------------------------------------------------------------------------------


def chatty(seed: int = 0, **kw) -> OfflineModel:
    cfg = OfflineModel(seed=seed, **kw)
    cfg.add_rule(rule("long answer", lambda p: "word " * 40))
    return cfg


def test_middleware_validation() -> None:
    led = InProcessLedger()
    b = [Budget("c", max_usd=1)]
    with pytest.raises(ConfigError, match="agent"):
        BudgetMiddleware(led, agent="", budgets=b, model="offline-1")
    with pytest.raises(ConfigError, match="at least one"):
        BudgetMiddleware(led, agent="a", budgets=[], model="offline-1")
    with pytest.raises(ConfigError, match="unique"):
        BudgetMiddleware(led, agent="a", budgets=b * 2, model="offline-1")
    with pytest.raises(ConfigError, match="ledger"):
        BudgetMiddleware(object(), agent="a", budgets=b, model="offline-1")  # type: ignore[arg-type]
    with pytest.raises(UnknownModelPrice, match="register_price"):
        BudgetMiddleware(led, agent="a", budgets=b, model="no-such-model-xyz")
    d = BudgetMiddleware(led, agent="a", budgets=b, model=chatty()).describe()
    assert d.config["model"] == "offline-1" and d.config["budgets"] == ("c",)


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_runaway_conversation_stops_before_the_cap(backend: str, request) -> None:
    ledger = InProcessLedger() if backend == "memory" else RedisLedger(request.getfixturevalue("redis_client"))
    cfg = chatty()
    refused: list[dict] = []
    bm = BudgetMiddleware(
        ledger,
        agent="writer",
        model=cfg,
        budgets=[Budget("conversation", max_usd=0.002)],
        max_completion_tokens=60,
        listeners=[lambda k, p: refused.append(dict(p))],
    )
    agent = ag2.Agent("writer", "Write.", config=cfg, middleware=[bm])
    reply = await agent.ask("go")
    with pytest.raises(BudgetExceeded) as info:
        for _ in range(100):
            reply = await reply.ask("more")
    assert info.value.budget == "conversation" and info.value.unit == "usd"
    frame = bm.usage_frame()
    ok = frame[frame.outcome == "ok"]
    assert ok.actual_usd.sum() <= 0.002 and (ok.actual_usd <= ok.estimate_usd).all()
    assert frame.outcome.iloc[-1] == "refused" and frame.conversation.unique().tolist() == ["conv-1"]
    report = bm.report()
    assert report.spent_usd.iloc[0] == pytest.approx(ok.actual_usd.sum(), abs=1e-9)
    assert report.account.iloc[0] == "conversation|conversation=conv-1"
    assert refused == [{"agent": "writer", "budget": "conversation", "scope": "conversation"}]
    assert cfg.calls == len(ok)  # the refused call never reached the model


async def test_conversation_budgets_are_separate_and_agent_budgets_are_per_agent() -> None:
    ledger = InProcessLedger()
    cfg = chatty()
    budgets = [Budget("conv", max_tokens=10_000), Budget("per-agent", scope="agent", max_tokens=100_000)]
    a = ag2.Agent(
        "a",
        "Write.",
        config=cfg,
        middleware=[BudgetMiddleware(ledger, agent="a", model=cfg, budgets=budgets)],
    )
    b = ag2.Agent(
        "b",
        "Write.",
        config=cfg,
        middleware=[BudgetMiddleware(ledger, agent="b", model=cfg, budgets=budgets)],
    )
    await a.ask("one")
    await a.ask("two")
    await b.ask("three")
    accounts = sorted(
        r["account"].split("=")[0] + "=" + ("x" if r["budget"] == "conv" else r["account"][-1])
        for r in ledger.accounts()
    )
    assert accounts == ["conv|conversation=x"] * 3 + ["per-agent|agent=a", "per-agent|agent=b"]


async def test_retries_reuse_one_reservation_and_failures_release() -> None:
    ledger = InProcessLedger()
    cfg = chatty(faults=Faults(rate_limit=0.5), seed=4)
    bm = BudgetMiddleware(
        ledger,
        agent="w",
        model=cfg,
        budgets=[Budget("g", scope="global", max_usd=1.0)],
        max_completion_tokens=60,
    )
    agent = ag2.Agent(
        "w", "Write.", config=cfg, middleware=[RetryMiddleware(max_retries=8, retry_on=(RateLimitError,)), bm]
    )
    for i in range(6):
        await agent.ask(f"task {i}")
    faults = int(cfg.calls_frame().fault.notna().sum())
    assert faults > 0  # retries really happened
    frame = bm.usage_frame()
    assert (frame.outcome == "ok").sum() == 6 and (frame.outcome == "error").sum() == faults
    row = ledger.accounts()[0]
    assert row["reserved_usd"] == 0 and ledger.in_flight() == 0
    assert row["spent_usd"] == pytest.approx(frame.actual_usd.sum(), abs=1e-9)  # charged once per success


async def test_concurrent_asks_against_a_shared_budget_never_overshoot() -> None:
    ledger = InProcessLedger()
    cfg = chatty(latency_s=0.002)
    cap = 0.003
    bm = BudgetMiddleware(
        ledger,
        agent="w",
        model=cfg,
        budgets=[Budget("shared", scope="global", max_usd=cap)],
        max_completion_tokens=60,
    )
    agent = ag2.Agent("w", "Write.", config=cfg, middleware=[bm])

    async def one(i: int) -> bool:
        try:
            await agent.ask(f"request {i}")
            return True
        except BudgetExceeded:
            return False

    results = await asyncio.gather(*(one(i) for i in range(60)))
    assert 0 < sum(results) < 60
    row = ledger.accounts()[0]
    assert row["spent_usd"] <= cap and row["reserved_usd"] == 0


async def test_a_raising_listener_does_not_hide_the_refusal() -> None:
    def boom(kind, payload):
        raise RuntimeError("listener down")

    cfg = chatty()
    bm = BudgetMiddleware(
        InProcessLedger(), agent="w", model=cfg, budgets=[Budget("tiny", max_tokens=5)], listeners=[boom]
    )
    with pytest.raises(BudgetExceeded, match="tiny"):
        await ag2.Agent("w", "Write.", config=cfg, middleware=[bm]).ask("hello")


async def test_requests_per_minute_budget_through_the_middleware() -> None:
    cfg = chatty()
    bm = BudgetMiddleware(
        InProcessLedger(),
        agent="w",
        model=cfg,
        budgets=[Budget("rpm", scope="agent", max_requests=3, window_s=60)],
    )
    agent = ag2.Agent("w", "Write.", config=cfg, middleware=[bm])
    for i in range(3):
        await agent.ask(f"q{i}")
    with pytest.raises(BudgetExceeded, match="requests"):
        await agent.ask("q4")


def test_windowed_budgets_roll_over_with_the_clock() -> None:
    clock = {"now": 7_200.0}
    ledger = InProcessLedger(clock=lambda: clock["now"])
    bm = BudgetMiddleware(
        ledger,
        agent="a",
        model="offline-1",
        budgets=[Budget("hourly", scope="agent", max_tokens=100, window_s=3600)],
    )
    first = bm.lines("c1", usd=0, tokens=60, now=clock["now"])
    assert first[0].account == "hourly|agent=a|w2"
    ledger.reserve("x1", first)
    ledger.settle("x1", 0, 60)
    with pytest.raises(BudgetExceeded, match="hourly"):
        ledger.reserve("x2", bm.lines("c2", usd=0, tokens=60, now=clock["now"] + 100))
    clock["now"] += 3600  # the next clock hour is a fresh window
    later = bm.lines("c3", usd=0, tokens=60, now=clock["now"])
    assert later[0].account == "hourly|agent=a|w3"
    assert ledger.reserve("x3", later).fresh


# ------------------------------------------------------------------------------------------------
# The call is the identity: trimming, retries, odd usage, unpriced models
# ------------------------------------------------------------------------------------------------


def _ledger_for(backend: str, request) -> Ledger:
    if backend == "memory":
        return InProcessLedger()
    return RedisLedger(request.getfixturevalue("redis_client"), prefix=f"t-{uuid.uuid4().hex}")


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize("trim", [HistoryLimiter(3), TokenLimiter(60)], ids=["history", "tokens"])
async def test_trimming_in_front_of_the_budget_cannot_hide_calls(backend: str, trim, request) -> None:
    """Issue 11 #1: with HistoryLimiter first, keys built from the history position repeated and
    60 turns against a 3,000-token cap used 6,258 tokens while the ledger recorded 110."""
    ledger = _ledger_for(backend, request)
    cfg = chatty()
    bm = BudgetMiddleware(
        ledger, agent="w", model=cfg, budgets=[Budget("c", max_tokens=3000)], max_completion_tokens=60
    )
    reply = await ag2.Agent("w", "Write.", config=cfg, middleware=[trim, bm]).ask("go")
    with pytest.raises(BudgetExceeded, match="'c'"):
        for _ in range(60):
            reply = await reply.ask("more")
    row = ledger.accounts()[0]
    served = int(cfg.usage.prompt_tokens + cfg.usage.completion_tokens)
    assert row["spent_tokens"] == served <= 3000
    assert row["calls"] == cfg.calls and row["reserved_tokens"] == 0


async def test_a_retry_outside_the_budget_keeps_the_call_id_and_books_each_attempt() -> None:
    ledger = InProcessLedger()
    cfg = chatty(faults=Faults(rate_limit=0.5), seed=4)
    bm = BudgetMiddleware(ledger, agent="w", model=cfg, budgets=[Budget("g", scope="global", max_tokens=100_000)])
    retry = RetryMiddleware(max_retries=8, retry_on=(RateLimitError,))
    agent = ag2.Agent("w", "Write.", config=cfg, middleware=[retry, bm])
    for i in range(4):
        await agent.ask(f"t{i}")
    frame = bm.usage_frame()
    assert frame.call.tolist() == [1, 1, 2, 3, 3, 3, 4]  # seed 4: calls 1 and 3 hit rate limits
    assert frame.attempt.tolist() == [1, 2, 1, 1, 2, 3, 1]
    assert frame.groupby("call").outcome.last().eq("ok").all()
    assert ledger.accounts()[0]["spent_tokens"] == cfg.usage.prompt_tokens + cfg.usage.completion_tokens


class _ReportUsage(BaseMiddleware):
    """Stands in for a model client that reports odd usage (placed inside the budget)."""

    def __init__(self, event, context, usage) -> None:
        super().__init__(event, context)
        self.usage = usage

    async def on_llm_call(self, call_next, events, context):
        resp = await call_next(events, context)
        resp.usage = self.usage
        return resp


async def test_negative_usage_is_refused_and_charged_its_reservation() -> None:
    ledger = InProcessLedger()
    cfg = chatty()
    bm = BudgetMiddleware(ledger, agent="w", model=cfg, budgets=[Budget("c", max_usd=1.0)])
    bad = Middleware(_ReportUsage, usage=Usage(prompt_tokens=-500, completion_tokens=10))
    with pytest.raises(ConfigError, match=r"token counts must be finite and ≥ 0.*fix the client"):
        await ag2.Agent("w", "Write.", config=cfg, middleware=[bm, bad]).ask("go")
    frame, row = bm.usage_frame(), ledger.accounts()[0]
    assert frame.outcome.tolist() == ["bad usage"]
    assert row["spent_nano_usd"] == to_nano(frame.estimate_usd.iloc[0]) > 0  # charged, never refunded
    assert row["spent_tokens"] == frame.estimate_tokens.iloc[0] and row["reserved_usd"] == 0


async def test_a_response_without_usage_is_charged_its_reservation() -> None:
    ledger = InProcessLedger()
    cfg = chatty()
    bm = BudgetMiddleware(ledger, agent="w", model=cfg, budgets=[Budget("c", max_tokens=10_000)])
    await ag2.Agent("w", "Write.", config=cfg, middleware=[bm, Middleware(_ReportUsage, usage=None)]).ask("go")
    frame, row = bm.usage_frame(), ledger.accounts()[0]
    assert row["spent_tokens"] == frame.estimate_tokens.iloc[0] > 0


async def test_token_caps_work_on_an_unpriced_model_usd_caps_refuse_at_construction() -> None:
    cfg = chatty(model="my-local-llama")
    fix = r"\['usd'\] capping USD needs a price .*agentops\.pricing\.register_price\('my-local-llama'"
    with pytest.raises(UnknownModelPrice, match=fix):
        BudgetMiddleware(InProcessLedger(), agent="w", model=cfg, budgets=[Budget("usd", max_usd=1.0)])
    ledger = InProcessLedger()
    bm = BudgetMiddleware(ledger, agent="w", model=cfg, budgets=[Budget("tok", max_tokens=10_000)])
    with pytest.warns(UnpricedModelWarning, match="register_price"):  # the one unpriced policy: warned, counted
        await ag2.Agent("w", "Write.", config=cfg, middleware=[bm]).ask("go")
    frame, row = bm.usage_frame(), ledger.accounts()[0]
    assert frame.actual_usd.isna().all() and frame.estimate_usd.eq(0).all()
    assert row["spent_tokens"] == cfg.usage.prompt_tokens + cfg.usage.completion_tokens and row["spent_usd"] == 0


def test_budget_exceeded_is_a_refusal_and_pickles() -> None:
    import pickle

    from agentops import errors

    exc = BudgetExceeded("b", "global", "tokens", 5, 1, 2, 6)
    assert isinstance(exc, errors.RefusalError) and not errors.is_retryable(exc)
    again = pickle.loads(pickle.dumps(exc))
    assert (again.budget, again.unit, again.cap, str(again)) == ("b", "tokens", 6, str(exc))


# ------------------------------------------------------------------------------------------------
# Redis leases: a dead holder's reservation comes back
# ------------------------------------------------------------------------------------------------


def test_redis_lease_returns_a_dead_holders_reservation(redis_client) -> None:
    clock = {"now": 1_000.0}
    holder = RedisLedger(redis_client, prefix="lease", lease_s=30, clock=lambda: clock["now"])
    holder.reserve("dead", [line(cap_usd=100, usd=80, tokens=5)])
    other = RedisLedger(redis_client, prefix="lease", lease_s=30, clock=lambda: clock["now"])
    with pytest.raises(BudgetExceeded):
        other.reserve("next", [line(cap_usd=100, usd=50)])
    clock["now"] += 31  # the holder never settled: its lease has ended
    assert other.reserve("next", [line(cap_usd=100, usd=50)]).fresh
    row = spent(other)
    assert (row["reserved_nano_usd"], row["reserved_tokens"], row["spent_nano_usd"]) == (50, 0, 0)
    # A holder that was only slow is still charged when it settles (the call was made), as an overrun.
    assert holder.settle("dead", 70, 4) is True
    row = spent(other)
    assert (row["spent_nano_usd"], row["reserved_nano_usd"], other.overruns()) == (70, 50, 1)


def test_redis_release_and_settle_work_from_another_process(redis_client) -> None:
    RedisLedger(redis_client, prefix="x").reserve("k", [line(cap_usd=100, usd=80)])
    elsewhere = RedisLedger(redis.Redis(connection_pool=redis_client.connection_pool), prefix="x")
    assert elsewhere.release("k") is True and elsewhere.release("k") is False
    assert spent(elsewhere)["reserved_nano_usd"] == 0


def test_redis_ledger_validates_lease_and_ttl(redis_client) -> None:
    for kw in ({"lease_s": 0}, {"lease_s": float("nan")}, {"lease_s": 60, "record_ttl_s": 30}):
        with pytest.raises(ConfigError, match=r"lease_s|record_ttl_s"):
            RedisLedger(redis_client, **kw)


_HOLDER = r"""
import asyncio, sys
import ag2, redis
from agentops.budgets import Budget, BudgetMiddleware, RedisLedger
from agentops.models import OfflineModel
ledger = RedisLedger(redis.Redis.from_url(sys.argv[1]), prefix="kill", lease_s=float(sys.argv[2]))
cfg = OfflineModel(latency_s=120.0)  # the model call hangs: the process dies in the middle of it
bm = BudgetMiddleware(ledger, agent="victim", model=cfg, budgets=[Budget("team", scope="global", max_usd=0.01)],
                      max_completion_tokens=1000)
asyncio.run(ag2.Agent("victim", "Write.", config=cfg, middleware=[bm]).ask("hello"))
"""


@pytest.mark.redis
def test_kill_9_mid_call_strands_the_reservation_only_until_its_lease_ends(redis_url, redis_client) -> None:
    """Issue 11 #3: kill -9 between reserve and settle left the reserved total on the account forever."""
    lease_s = 20.0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, redis_url, str(lease_s)], env=env, stderr=subprocess.PIPE)
    ledger = RedisLedger(redis_client, prefix="kill", lease_s=lease_s)
    try:
        deadline = time.monotonic() + 60
        while not any(r["reserved_nano_usd"] for r in ledger.accounts()):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "the holder never reserved"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    held = ledger.accounts()[0]
    assert proc.returncode == -signal.SIGKILL and held["reserved_nano_usd"] > 0 and held["spent_usd"] == 0
    whole_cap = [Line(held["account"], "team", "global", to_nano(0.01), -1, -1, 0.0, to_nano(0.01), 0)]
    with pytest.raises(BudgetExceeded, match="team"):
        ledger.reserve("survivor", whole_cap)  # inside the lease the dead call still counts
    later = RedisLedger(redis_client, prefix="kill", lease_s=lease_s, clock=lambda: time.time() + lease_s + 1)
    assert later.accounts()[0]["reserved_nano_usd"] == 0  # given back atomically once the lease ended
    assert later.reserve("survivor", whole_cap).fresh


# ------------------------------------------------------------------------------------------------
# Property: booked == spent whatever the middleware order
# ------------------------------------------------------------------------------------------------

_STACKS = st.lists(st.sampled_from(["history", "tokens", "retry", "guardrails"]), unique=True).flatmap(
    lambda others: st.permutations([*others, "budget"])
)


def _check_audit(audit) -> None:
    assert audit.uncharged_calls == 0, audit
    assert abs(audit.booked_tokens - audit.spent_tokens) <= audit.max_reservation_tokens, audit
    assert audit.booked_tokens == audit.spent_tokens and audit.booked_nano_usd == audit.spent_nano_usd, audit
    assert audit.overshoot_tokens == 0 and audit.overruns == 0, audit


@settings(max_examples=15, deadline=None)
@given(stack=_STACKS, seed=st.integers(0, 10_000))
def test_property_booked_equals_spent_for_any_stack_in_process(stack, seed) -> None:
    _check_audit(asyncio.run(audit_stack(stack, seed=seed, turns=6, cap_tokens=2_000)))


@pytest.mark.redis
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stack=_STACKS, seed=st.integers(0, 10_000))
def test_property_booked_equals_spent_for_any_stack_on_redis(redis_client, stack, seed) -> None:
    ledger = RedisLedger(redis_client, prefix=f"stack-{uuid.uuid4().hex}")
    _check_audit(asyncio.run(audit_stack(stack, ledger=ledger, seed=seed, turns=6, cap_tokens=2_000)))


def test_audit_stack_validates_its_stack() -> None:
    for bad in (["history"], ["budget", "budget"], ["budget", "cache"]):
        with pytest.raises(ConfigError, match="names 'budget' once"):
            asyncio.run(audit_stack(bad))


async def test_records_and_conversation_labels_are_bounded_by_max_records() -> None:
    ledger = InProcessLedger()
    bm = BudgetMiddleware(
        ledger, agent="writer", model="offline-1", budgets=[Budget("conversation", max_tokens=10**6)], max_records=2
    )
    agent = ag2.Agent("writer", "Write.", config=OfflineModel(), middleware=[bm])
    for _ in range(3):  # three conversations, one call each
        await agent.ask("hello")
    frame = bm.usage_frame()
    assert frame.conversation.tolist() == ["conv-2", "conv-3"]  # the newest two; labels keep counting
    assert len(bm._conversations) == 2
    accounts = bm.report().account.tolist()
    assert sum("conv-" in a for a in accounts) == 2 and len(accounts) == 3  # the oldest keeps its raw id


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_max_records_must_be_a_whole_number_or_none(bad) -> None:
    with pytest.raises(ConfigError, match="max_records must be a whole number"):
        BudgetMiddleware(
            InProcessLedger(), agent="a", model="offline-1", budgets=[Budget("agent", max_tokens=9)], max_records=bad
        )
    assert (
        BudgetMiddleware(
            InProcessLedger(), agent="a", model="offline-1", budgets=[Budget("agent", max_tokens=9)], max_records=None
        ).max_records
        is None
    )
