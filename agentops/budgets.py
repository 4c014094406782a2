"""Token, cost and request budgets for AG2 agents, enforced *before* each model call.

AG2 v1 reports tokens but has no cost and no budget middleware. :class:`BudgetMiddleware` adds both in
AG2's middleware shape (a factory configured once, an instance per turn). On every ``on_llm_call`` it

1. estimates the call — prompt tokens from the events about to be sent plus ``max_completion_tokens``
   for the answer, priced by :func:`agentops.pricing.cost` — and **reserves** that amount against every
   applicable :class:`Budget` in one atomic step (all or nothing);
2. makes the call;
3. **settles** the actual usage from the response (releasing the difference), or releases the whole
   reservation if the call failed.

Because the reservation is atomic, concurrent calls can never jointly pass a cap: a call is refused with
:class:`BudgetExceeded` *before* it costs anything, and the sum of what was let through never exceeds the
cap as long as each call's actual cost is within its estimate (set ``max_completion_tokens`` to the
``max_tokens`` your provider enforces). A call whose actual cost exceeded its estimate is still recorded
truthfully, and counted in :meth:`Ledger.overruns`.

Budgets have an explicit scope — one conversation (the AG2 stream), one agent, or global — and either a
lifetime or a time window (``window_s``: calendar windows for tokens/USD, a sliding window for
``max_requests``, i.e. requests per minute). Scope is the lesson from the field: one factory shared by
several agents still keeps per-agent budgets per agent.

Two ledgers implement the same protocol: :class:`InProcessLedger` (a lock; threads and asyncio tasks of
one process) and :class:`RedisLedger` (Lua scripts; several processes or replicas). Every reservation
carries an idempotency key, derived from the conversation and its position in it, so a retried call
re-uses its reservation and a second settle is a no-op: nothing is charged twice.

Example::

    ledger = InProcessLedger()
    budgets = [Budget("conversation", scope="conversation", max_usd=0.01),
               Budget("rpm", scope="agent", max_requests=60, window_s=60)]
    agent = ag2.Agent("writer", config=cfg, middleware=[BudgetMiddleware(ledger, agent="writer",
                                                                         model=cfg, budgets=budgets)])
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from ag2.events import BaseEvent, ModelResponse, Usage, estimated_tokens
from ag2.middleware import BaseMiddleware
from ag2.middleware.describe import MiddlewareDescription

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.errors import AgentOpsError, ConfigError
from agentops.listeners import BUDGET_REFUSED, Listener, notify
from agentops.pricing import cost as usage_cost
from agentops.pricing import price

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
    "to_nano",
]

log = logging.getLogger(__name__)

NANO_USD = 1_000_000_000  # ledgers count integer nano-dollars: exact sums, no float drift
Scope = Literal["conversation", "agent", "global"]


def to_nano(usd: float, *, round_up: bool = False) -> int:
    """USD as integer nano-dollars (estimates round up so a reservation is never too small)."""
    x = usd * NANO_USD
    return math.ceil(x - 1e-6) if round_up else round(x)


@dataclass(frozen=True)
class Budget:
    """One cap. At least one of ``max_usd``, ``max_tokens``, ``max_requests`` must be set.

    Args:
        name: how the budget is named in errors and reports (``"conversation"``, ``"team-hourly"``).
        scope: ``"conversation"`` (each AG2 stream separately), ``"agent"`` (each agent name) or
            ``"global"`` (everything that uses the ledger).
        max_usd: USD cap.
        max_tokens: total (prompt + completion) token cap.
        max_requests: model calls allowed per ``window_s`` (a sliding window); needs ``window_s``.
        window_s: ``None`` for a lifetime budget; else the window length in seconds (calendar windows
            aligned to the epoch for USD/tokens, e.g. 3600 → per clock hour).
    """

    name: str
    scope: Scope = "conversation"
    max_usd: float | None = None
    max_tokens: int | None = None
    max_requests: int | None = None
    window_s: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str) or "|" in self.name:
            raise ConfigError(f"budget name must be a non-empty string without '|', got {self.name!r}")
        if self.scope not in ("conversation", "agent", "global"):
            raise ConfigError(
                f"budget {self.name!r}: scope must be conversation, agent or global, got {self.scope!r}"
            )
        if self.max_usd is None and self.max_tokens is None and self.max_requests is None:
            raise ConfigError(f"budget {self.name!r} has no cap: set max_usd, max_tokens or max_requests")
        for field_name in ("max_usd", "max_tokens", "max_requests", "window_s"):
            value = getattr(self, field_name)
            if value is not None and (
                not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0
            ):
                raise ConfigError(f"budget {self.name!r}: {field_name} must be a number > 0, got {value!r}")
        if self.max_requests is not None and self.window_s is None:
            raise ConfigError(
                f"budget {self.name!r}: max_requests needs window_s (e.g. window_s=60 for per minute)"
            )


class Line(NamedTuple):
    """One account touched by a reservation (what a ledger needs to know; no budget objects)."""

    account: str
    budget: str
    scope: str
    cap_usd: int  # nano-USD, -1 = no cap
    cap_tokens: int  # -1 = no cap
    cap_requests: int  # -1 = no cap
    window_s: float  # 0 = lifetime; sliding window for requests
    usd: int  # reserved nano-USD
    tokens: int  # reserved tokens


class Reservation(NamedTuple):
    """What a ledger holds for one call until it is settled or released."""

    key: str
    lines: tuple[Line, ...]
    usd: int
    tokens: int
    fresh: bool  # False when the key was already reserved (a retry re-using its reservation)


class BudgetExceeded(AgentOpsError):
    """A call was refused before it was made: it would take a budget over its cap.

    Attributes name the budget, its scope key, the unit and the amounts (``spent``, ``reserved`` by
    calls in flight, ``requested`` by this call, ``cap``) so a caller can report or react.
    """

    def __init__(
        self, budget: str, scope: str, unit: str, spent: float, reserved: float, requested: float, cap: float
    ) -> None:
        self.budget, self.scope, self.unit = budget, scope, unit
        self.spent, self.reserved, self.requested, self.cap = spent, reserved, requested, cap
        if unit == "usd":
            fmt = "${:.6f}".format
            fix = "raise max_usd or shorten the task"
        elif unit == "tokens":
            fmt = "{:.0f} tokens".format
            fix = "raise max_tokens, lower max_completion_tokens or trim the history"
        else:
            fmt = "{:.0f} requests".format
            fix = "wait for the window to move on or raise max_requests"
        super().__init__(
            f"budget {budget!r} ({scope}) exceeded: {fmt(spent)} spent + {fmt(reserved)} reserved + "
            f"{fmt(requested)} requested > {fmt(cap)} cap; {fix}"
        )


def _exceeded(line: Line, unit: str, spent: int, reserved: int, requested: int, cap: int) -> BudgetExceeded:
    scale = NANO_USD if unit == "usd" else 1
    return BudgetExceeded(
        line.budget, line.scope, unit, spent / scale, reserved / scale, requested / scale, cap / scale
    )


@runtime_checkable
class Ledger(Protocol):
    """Where reservations and spend are kept; both implementations are safe under concurrency."""

    def reserve(self, key: str, lines: Sequence[Line]) -> Reservation: ...

    def settle(self, key: str, usd: int, tokens: int) -> bool: ...

    def release(self, key: str) -> bool: ...

    def accounts(self) -> list[dict[str, Any]]: ...

    def overruns(self) -> int: ...


# ==================================================================================================
# In-process ledger
# ==================================================================================================


class InProcessLedger:
    """A ledger for one process: one lock, integer arithmetic; thread-safe and asyncio-safe.

    Args:
        max_settled: how many settled/released keys are remembered for idempotency.
        clock: time source (seconds); injectable for tests of windows.
    """

    def __init__(self, *, max_settled: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        # account -> [spent_usd, reserved_usd, spent_tokens, reserved_tokens, requests_total]
        self._acct: dict[str, list[int]] = {}
        self._meta: dict[str, Line] = {}
        self._requests: dict[str, deque[float]] = {}
        self._active: dict[str, Reservation] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._max_done = max_settled
        self._overruns = 0
        self.clock = clock

    def reserve(self, key: str, lines: Sequence[Line]) -> Reservation:
        """Reserve every line or none; raises :class:`BudgetExceeded` naming the first cap hit."""
        with self._lock:
            held = self._active.get(key)
            if held is not None:
                return held._replace(fresh=False)
            if key in self._done:
                return Reservation(key, (), 0, 0, False)
            now = self.clock()
            for line in lines:
                acct = self._acct.get(line.account)
                su, ru, st, rt = (acct[0], acct[1], acct[2], acct[3]) if acct else (0, 0, 0, 0)
                if line.cap_usd >= 0 and su + ru + line.usd > line.cap_usd:
                    raise _exceeded(line, "usd", su, ru, line.usd, line.cap_usd)
                if line.cap_tokens >= 0 and st + rt + line.tokens > line.cap_tokens:
                    raise _exceeded(line, "tokens", st, rt, line.tokens, line.cap_tokens)
                if line.cap_requests >= 0:
                    q = self._requests.get(line.account)
                    if q is not None:
                        edge = now - line.window_s
                        while q and q[0] <= edge:
                            q.popleft()
                        if len(q) + 1 > line.cap_requests:
                            raise _exceeded(line, "requests", len(q), 0, 1, line.cap_requests)
            for line in lines:
                acct = self._acct.get(line.account)
                if acct is None:
                    acct = self._acct[line.account] = [0, 0, 0, 0, 0]
                    self._meta[line.account] = line
                acct[1] += line.usd
                acct[3] += line.tokens
                acct[4] += 1
                if line.cap_requests >= 0:
                    q = self._requests.get(line.account)
                    if q is None:
                        q = self._requests[line.account] = deque()
                    q.append(now)
            res = Reservation(
                key,
                tuple(lines),
                max((ln.usd for ln in lines), default=0),
                max((ln.tokens for ln in lines), default=0),
                True,
            )
            self._active[key] = res
            return res

    def settle(self, key: str, usd: int, tokens: int) -> bool:
        """Replace the reservation by the actual amounts; False (no-op) if already settled/released."""
        with self._lock:
            res = self._active.pop(key, None)
            if res is None:
                return False
            over = False
            for line in res.lines:
                acct = self._acct[line.account]
                acct[1] -= line.usd
                acct[3] -= line.tokens
                acct[0] += usd
                acct[2] += tokens
                over = over or usd > line.usd or tokens > line.tokens
            self._overruns += over
            self._remember(key)
            return True

    def release(self, key: str) -> bool:
        """Drop the reservation without charging (the call failed); False if nothing was held."""
        with self._lock:
            res = self._active.pop(key, None)
            if res is None:
                return False
            for line in res.lines:
                acct = self._acct[line.account]
                acct[1] -= line.usd
                acct[3] -= line.tokens
            return True  # a released key may be reserved again (the retry of a failed call)

    def _remember(self, key: str) -> None:
        self._done[key] = None
        if len(self._done) > self._max_done:
            self._done.popitem(last=False)

    def accounts(self) -> list[dict[str, Any]]:
        """One row per account: budget, scope, spent/reserved/cap in USD and tokens, requests."""
        with self._lock:
            now = self.clock()
            rows = []
            for account, (su, ru, st, rt, n) in self._acct.items():
                meta = self._meta[account]
                q = self._requests.get(account)
                in_window = sum(1 for t in q if t > now - meta.window_s) if q is not None else None
                rows.append(_row(account, meta, su, ru, st, rt, n, in_window))
            return rows

    def overruns(self) -> int:
        """How many settled calls cost more than they reserved."""
        with self._lock:
            return self._overruns

    def in_flight(self) -> int:
        """Reservations not yet settled or released."""
        with self._lock:
            return len(self._active)


def _row(account: str, meta: Line, su: int, ru: int, st: int, rt: int, n: int, in_window: int | None) -> dict:
    return {
        "account": account,
        "budget": meta.budget,
        "scope": meta.scope,
        "spent_usd": su / NANO_USD,
        "reserved_usd": ru / NANO_USD,
        "spent_nano_usd": su,
        "reserved_nano_usd": ru,
        "cap_usd": meta.cap_usd / NANO_USD if meta.cap_usd >= 0 else None,
        "spent_tokens": st,
        "reserved_tokens": rt,
        "cap_tokens": meta.cap_tokens if meta.cap_tokens >= 0 else None,
        "calls": n,
        "requests_in_window": in_window,
        "cap_requests": meta.cap_requests if meta.cap_requests >= 0 else None,
    }


# ==================================================================================================
# Redis ledger
# ==================================================================================================

_RESERVE_LUA = """
-- KEYS[1] = reservation record; then per line: account hash, request zset
-- ARGV[1] = now (s), ARGV[2] = lines JSON, ARGV[3] = record ttl (s), ARGV[4] = reservation key
local existing = redis.call('GET', KEYS[1])
if existing and existing ~= 'X' then return {2, existing} end
local now = tonumber(ARGV[1])
local lines = cjson.decode(ARGV[2])
for i, l in ipairs(lines) do
  local acct = KEYS[2 * i]
  local vals = redis.call('HMGET', acct, 'su', 'ru', 'st', 'rt')
  local su, ru = tonumber(vals[1] or '0'), tonumber(vals[2] or '0')
  local st, rt = tonumber(vals[3] or '0'), tonumber(vals[4] or '0')
  if l.cu >= 0 and su + ru + l.u > l.cu then return {0, i, 'usd', su, ru, l.u, l.cu} end
  if l.ct >= 0 and st + rt + l.t > l.ct then return {0, i, 'tokens', st, rt, l.t, l.ct} end
  if l.cr >= 0 then
    local rq = KEYS[2 * i + 1]
    redis.call('ZREMRANGEBYSCORE', rq, '-inf', now - l.w)
    local n = redis.call('ZCARD', rq)
    if n + 1 > l.cr then return {0, i, 'requests', n, 0, 1, l.cr} end
  end
end
for i, l in ipairs(lines) do
  local acct = KEYS[2 * i]
  redis.call('HINCRBY', acct, 'ru', l.u)
  redis.call('HINCRBY', acct, 'rt', l.t)
  redis.call('HINCRBY', acct, 'n', 1)
  if redis.call('HEXISTS', acct, 'meta') == 0 then redis.call('HSET', acct, 'meta', cjson.encode(l)) end
  if l.w > 0 and l.cr < 0 then redis.call('EXPIRE', acct, math.ceil(l.w * 2 + 60)) end
  if l.cr >= 0 then
    local rq = KEYS[2 * i + 1]
    redis.call('ZADD', rq, now, ARGV[4] .. ':' .. i)
    redis.call('EXPIRE', rq, math.ceil(l.w + 60))
  end
end
redis.call('SET', KEYS[1], 'R', 'EX', tonumber(ARGV[3]))
return {1}
"""

_FINISH_LUA = """
-- KEYS[1] = reservation record, then the account hashes; ARGV[1] = mode ('S' settle / 'X' release),
-- ARGV[2] = lines JSON (reserved amounts), ARGV[3] = actual usd, ARGV[4] = actual tokens, ARGV[5] = ttl
local state = redis.call('GET', KEYS[1])
if state ~= 'R' then return 0 end
local lines = cjson.decode(ARGV[2])
local over = 0
for i, l in ipairs(lines) do
  local acct = KEYS[i + 1]
  redis.call('HINCRBY', acct, 'ru', 0 - l.u)
  redis.call('HINCRBY', acct, 'rt', 0 - l.t)
  if ARGV[1] == 'S' then
    redis.call('HINCRBY', acct, 'su', tonumber(ARGV[3]))
    redis.call('HINCRBY', acct, 'st', tonumber(ARGV[4]))
    if tonumber(ARGV[3]) > l.u or tonumber(ARGV[4]) > l.t then over = 1 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[5]))
if over == 1 then redis.call('INCR', KEYS[1] .. ':overruns') end
return 1
"""


class RedisLedger:
    """A ledger shared by several processes or replicas through Redis (atomic Lua scripts).

    Each reserve checks and books every line in one script, so it is atomic across processes; settle
    and release are one script each and idempotent per key. Keys share the hash tag ``{prefix}`` so the
    scripts also work on Redis Cluster.

    Args:
        client: a ``redis.Redis`` client (e.g. ``redis.Redis.from_url("redis://127.0.0.1:6379/0")``).
        prefix: key namespace (one per application or environment).
        record_ttl_s: how long a reservation record (the idempotency key) is kept.
        clock: time source in seconds (request windows use it).
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "agentops",
        record_ttl_s: int = 86_400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigError(f"invalid Redis key prefix {prefix!r}: a non-empty string without braces")
        self.client = client
        self.prefix = prefix
        self.ttl = int(record_ttl_s)
        self.clock = clock
        self._reserve = client.register_script(_RESERVE_LUA)
        self._finish = client.register_script(_FINISH_LUA)
        self._held: dict[str, Reservation] = {}
        self._lock = threading.Lock()

    def _k(self, *parts: str) -> str:
        return "{" + self.prefix + "}:" + ":".join(parts)

    def _acct_keys(self, lines: Sequence[Line]) -> list[str]:
        keys = []
        for line in lines:
            keys += [self._k("acct", line.account), self._k("rq", line.account)]
        return keys

    def reserve(self, key: str, lines: Sequence[Line]) -> Reservation:
        """Reserve every line or none (atomically in Redis); raises :class:`BudgetExceeded`."""
        payload = json.dumps(
            [
                {
                    "u": ln.usd,
                    "t": ln.tokens,
                    "cu": ln.cap_usd,
                    "ct": ln.cap_tokens,
                    "cr": ln.cap_requests,
                    "w": ln.window_s,
                    "b": ln.budget,
                    "s": ln.scope,
                }
                for ln in lines
            ]
        )
        out = self._reserve(
            keys=[self._k("res", key), *self._acct_keys(lines)],
            args=[repr(self.clock()), payload, self.ttl, key],
        )
        status = int(out[0])
        if status == 0:
            line = lines[int(out[1]) - 1]
            unit = out[2].decode() if isinstance(out[2], bytes) else str(out[2])
            raise _exceeded(line, unit, int(out[3]), int(out[4]), int(out[5]), int(out[6]))
        res = Reservation(
            key,
            tuple(lines),
            max((ln.usd for ln in lines), default=0),
            max((ln.tokens for ln in lines), default=0),
            status == 1,
        )
        with self._lock:
            if status == 1:
                self._held[key] = res
            else:
                res = self._held.get(key, res._replace(lines=()))._replace(fresh=False)
        return res

    def _end(self, key: str, mode: str, usd: int, tokens: int) -> bool:
        with self._lock:
            res = self._held.pop(key, None)
        if res is None:
            return False
        payload = json.dumps([{"u": ln.usd, "t": ln.tokens} for ln in res.lines])
        keys = [self._k("res", key), *(self._k("acct", ln.account) for ln in res.lines)]
        return bool(self._finish(keys=keys, args=[mode, payload, int(usd), int(tokens), self.ttl]))

    def settle(self, key: str, usd: int, tokens: int) -> bool:
        """Replace the reservation by the actual amounts; False (no-op) if already settled/released."""
        return self._end(key, "S", usd, tokens)

    def release(self, key: str) -> bool:
        """Drop the reservation without charging; False if nothing was held."""
        return self._end(key, "X", 0, 0)

    def accounts(self) -> list[dict[str, Any]]:
        """One row per account under this prefix (see :meth:`InProcessLedger.accounts`)."""
        rows = []
        now = self.clock()
        for raw in sorted(self.client.scan_iter(match=self._k("acct", "*"), count=500)):
            name = raw.decode() if isinstance(raw, bytes) else raw
            h = {k.decode(): v.decode() for k, v in self.client.hgetall(name).items()}
            if "meta" not in h:
                continue
            m = json.loads(h["meta"])
            account = name.split(":", 2)[2]
            meta = Line(account, m["b"], m["s"], m["cu"], m["ct"], m["cr"], m["w"], m["u"], m["t"])
            in_window = None
            if meta.cap_requests >= 0:
                in_window = self.client.zcount(self._k("rq", account), now - meta.window_s, "+inf")
            rows.append(
                _row(
                    account,
                    meta,
                    int(h.get("su", 0)),
                    int(h.get("ru", 0)),
                    int(h.get("st", 0)),
                    int(h.get("rt", 0)),
                    int(h.get("n", 0)),
                    in_window,
                )
            )
        return rows

    def overruns(self) -> int:
        """How many settled calls cost more than they reserved."""
        return sum(
            int(self.client.get(k) or 0) for k in self.client.scan_iter(match=self._k("res", "*:overruns"))
        )


# ==================================================================================================
# The AG2 middleware
# ==================================================================================================


@dataclass(frozen=True)
class _CallRecord:
    call: int
    agent: str
    conversation: str
    outcome: str
    budget: str | None
    estimate_usd: float
    estimate_tokens: int
    actual_usd: float
    actual_tokens: int


class BudgetMiddleware:
    """AG2 middleware factory: reserve before every model call, settle after, refuse over the cap.

    Args:
        ledger: an :class:`InProcessLedger` or :class:`RedisLedger` (may be shared by many agents).
        agent: the agent's name (scope key for ``scope="agent"`` budgets, and in reports).
        budgets: the caps that apply to this agent's calls.
        model: model name (or an AG2 ``ModelConfig``) used to price the estimate; responses are
            settled at the model they report.
        provider: provider for pricing (taken from ``model`` when it is a config).
        max_completion_tokens: the completion part of every estimate — use your provider's ``max_tokens``
            so the estimate is an upper bound.
        chars_per_token: prompt-size heuristic for the estimate (3 over-estimates for English text).
        listeners: callables receiving ``("budget.refused", {"agent", "budget", "scope"})``.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        agent: str,
        budgets: Sequence[Budget],
        model: Any,
        provider: str | None = None,
        max_completion_tokens: int = 1024,
        chars_per_token: int = 3,
        listeners: Sequence[Listener] = (),
    ) -> None:
        if not isinstance(ledger, Ledger):
            raise ConfigError("ledger must be an InProcessLedger or RedisLedger (see agentops.budgets)")
        if not agent or not isinstance(agent, str):
            raise ConfigError(
                "BudgetMiddleware needs the agent's name: BudgetMiddleware(ledger, agent='writer', ...)"
            )
        if not budgets:
            raise ConfigError("BudgetMiddleware needs at least one Budget(...)")
        names = [b.name for b in budgets]
        if len(set(names)) != len(names):
            raise ConfigError(f"budget names must be unique, got {names}")
        if max_completion_tokens < 1 or chars_per_token < 1:
            raise ConfigError("max_completion_tokens and chars_per_token must be ≥ 1")
        model_name = model if isinstance(model, str) else getattr(model, "model", None)
        if not model_name:
            raise ConfigError("model must be a model name or an AG2 ModelConfig with .model")
        self.model = str(model_name)
        self.provider = provider or (
            None if isinstance(model, str) else str(getattr(model, "provider", "") or "")
        )
        price(self.model, self.provider or None)  # fail now, with the fix, if the model has no price
        self.ledger = ledger
        self.agent = agent
        self.budgets = tuple(budgets)
        self.max_completion_tokens = int(max_completion_tokens)
        self.chars_per_token = int(chars_per_token)
        self.listeners = tuple(listeners)
        self._lock = threading.Lock()
        self._records: list[_CallRecord] = []
        self._conversations: dict[str, str] = {}

    def __call__(self, event: BaseEvent, context: Any) -> BaseMiddleware:
        return _BudgetTurn(event, context, self)

    def describe(self) -> MiddlewareDescription:
        """AG2-style introspection."""
        return MiddlewareDescription(
            kind=type(self).__qualname__,
            config={
                "agent": self.agent,
                "model": self.model,
                "budgets": tuple(b.name for b in self.budgets),
                "max_completion_tokens": self.max_completion_tokens,
            },
        )

    # -- estimate, lines, records -----------------------------------------------------------------
    def estimate(self, events: Sequence[BaseEvent], context: Any) -> tuple[int, int]:
        """(nano-USD, tokens) reserved for one call: prompt estimate + ``max_completion_tokens``."""
        prompt = sum(estimated_tokens(e, self.chars_per_token) for e in events)
        prompt += sum(len(p) for p in (getattr(context, "prompt", None) or [])) // self.chars_per_token
        prompt += 16  # role/format overhead per call
        usd = usage_cost(
            Usage(prompt_tokens=prompt, completion_tokens=self.max_completion_tokens),
            self.model,
            self.provider or None,
        )
        return to_nano(usd, round_up=True), prompt + self.max_completion_tokens

    def lines(self, conversation: str, usd: int, tokens: int, now: float) -> tuple[Line, ...]:
        """The ledger lines for one call of this agent in ``conversation``."""
        out = []
        for b in self.budgets:
            scope_key = {
                "conversation": f"conversation={conversation}",
                "agent": f"agent={self.agent}",
                "global": "global",
            }[b.scope]
            account = f"{b.name}|{scope_key}"
            if b.window_s is not None and b.max_requests is None:
                account += f"|w{int(now // b.window_s)}"
            out.append(
                Line(
                    account,
                    b.name,
                    scope_key,
                    to_nano(b.max_usd) if b.max_usd is not None else -1,
                    int(b.max_tokens) if b.max_tokens is not None else -1,
                    int(b.max_requests) if b.max_requests is not None else -1,
                    float(b.window_s or 0.0),
                    usd,
                    tokens,
                )
            )
        return tuple(out)

    def _conversation_label(self, stream_id: str) -> str:
        with self._lock:
            label = self._conversations.get(stream_id)
            if label is None:
                label = self._conversations[stream_id] = f"conv-{len(self._conversations) + 1}"
            return label

    def _record(self, *fields: Any) -> None:
        with self._lock:
            self._records.append(_CallRecord(len(self._records) + 1, *fields))

    def _notify(self, exc: BudgetExceeded) -> None:
        payload = {"agent": self.agent, "budget": exc.budget, "scope": exc.scope.split("=", 1)[0]}
        notify(self.listeners, BUDGET_REFUSED, payload)

    def usage_frame(self) -> Any:
        """Per-call DataFrame: call, agent, conversation, outcome, budget, estimate/actual USD and tokens."""
        import pandas as pd

        with self._lock:
            rows = [r.__dict__ for r in self._records]
        return pd.DataFrame(rows, columns=list(_CallRecord.__dataclass_fields__))

    def report(self) -> Any:
        """The ledger's accounts this agent's budgets use, as a DataFrame (conversations relabelled)."""
        import pandas as pd

        names = {b.name for b in self.budgets}
        rows = [r for r in self.ledger.accounts() if r["budget"] in names]
        with self._lock:
            labels = dict(self._conversations)
        for r in rows:
            for stream_id, label in labels.items():
                r["account"] = r["account"].replace(stream_id, label)
                r["scope"] = r["scope"].replace(stream_id, label)
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame["utilisation"] = [
                (r["spent_usd"] / r["cap_usd"])
                if r["cap_usd"]
                else (r["spent_tokens"] / r["cap_tokens"])
                if r["cap_tokens"]
                else None
                for r in rows
            ]
        return frame


class _BudgetTurn(BaseMiddleware):
    def __init__(self, event: BaseEvent, context: Any, factory: BudgetMiddleware) -> None:
        super().__init__(event, context)
        self.f = factory

    async def on_llm_call(self, call_next: Any, events: Sequence[BaseEvent], context: Any) -> ModelResponse:
        f = self.f
        stream_id = str(getattr(getattr(context, "stream", None), "id", "") or id(context))
        label = f._conversation_label(stream_id)
        # Same conversation + same position = same call: a retry re-uses the reservation.
        key = f"{stream_id}|{f.agent}|{len(events)}"
        usd, tokens = f.estimate(events, context)
        lines = f.lines(
            stream_id, usd, tokens, f.ledger.clock() if hasattr(f.ledger, "clock") else time.time()
        )
        try:
            f.ledger.reserve(key, lines)
        except BudgetExceeded as exc:
            f._record(f.agent, label, "refused", exc.budget, usd / NANO_USD, tokens, 0.0, 0)
            f._notify(exc)
            raise
        try:
            resp: ModelResponse = await call_next(events, context)
        except BaseException:
            f.ledger.release(key)
            f._record(f.agent, label, "error", None, usd / NANO_USD, tokens, 0.0, 0)
            raise
        usage = resp.usage or Usage()
        model = resp.model or f.model
        try:
            actual = usage_cost(usage, model, (resp.provider or f.provider) or None)
        except AgentOpsError:
            actual = usage_cost(usage, f.model, f.provider or None)
        actual_tokens = int((usage.prompt_tokens or 0) + (usage.completion_tokens or 0))
        f.ledger.settle(key, to_nano(actual), actual_tokens)
        f._record(f.agent, label, "ok", None, usd / NANO_USD, tokens, actual, actual_tokens)
        return resp
