"""The ledger protocol, its value types, input validation, and the in-process ledger.

A ledger keeps, per account, what was spent and what is reserved by calls in flight, in integer
nano-dollars and tokens (exact sums, no float drift). A reservation is named by an idempotency key that
is bound to its amounts: asking again with the same key and the same lines returns the reservation that
exists (nothing is booked twice); asking with different amounts is an error, never a silent free call.
A released key (the call failed) is free again, so a retry of that call may reserve it anew.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from agentops.errors import ConfigError, RefusalError

NANO_USD = 1_000_000_000  # ledgers count integer nano-dollars: exact sums, no float drift
MAX_AMOUNT = 2**53 - 1  # every amount stays exact as a Lua (double) number in Redis
MAX_USD = 1_000_000.0  # the largest cap or amount in USD (1e15 nano-USD, well below MAX_AMOUNT)


def to_nano(usd: float, *, round_up: bool = False) -> int:
    """USD as integer nano-dollars (estimates round up so a reservation is never too small).

    Raises:
        ConfigError: ``usd`` is not a finite number in [0, 1,000,000].

    >>> to_nano(0.25)
    250000000
    >>> to_nano(0.0000000012, round_up=True)
    2
    """
    _check_usd("amount", usd)
    x = usd * NANO_USD
    return math.ceil(x - 1e-6) if round_up else round(x)


def _check_usd(what: str, usd: Any) -> None:
    if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not math.isfinite(usd):
        raise ConfigError(f"{what} must be a finite number of USD, got {usd!r}; pass e.g. 0.5")
    if not 0 <= usd <= MAX_USD:
        raise ConfigError(f"{what} must be between 0 and {MAX_USD:,.0f} USD, got {usd!r}")


def _check_count(what: str, value: Any, *, low: int = 0) -> int:
    """An integer amount in [low, MAX_AMOUNT]; floats that are whole numbers are accepted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise ConfigError(f"{what} must be a finite whole number, got {value!r}")
    if not low <= value <= MAX_AMOUNT:
        raise ConfigError(f"{what} must be between {low} and {MAX_AMOUNT}, got {value!r}")
    return int(value)


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
    fresh: bool  # False when the key already held (or settled) exactly these amounts


def check_key(key: Any) -> str:
    """A reservation key: a non-empty string of at most 200 characters."""
    if not isinstance(key, str) or not key or len(key) > 200:
        raise ConfigError(f"reservation key must be a non-empty string of ≤ 200 characters, got {key!r}")
    return key


def _plain(ln: Any) -> bool:
    """The common case, checked fast: a Line of in-range ints and a finite window."""
    return (
        type(ln) is Line
        and type(ln.usd) is int
        and type(ln.tokens) is int
        and type(ln.cap_usd) is int
        and type(ln.cap_tokens) is int
        and type(ln.cap_requests) is int
        and type(ln.window_s) is float
        and 0 <= ln.usd <= MAX_AMOUNT
        and 0 <= ln.tokens <= MAX_AMOUNT
        and -1 <= ln.cap_usd <= MAX_AMOUNT
        and -1 <= ln.cap_tokens <= MAX_AMOUNT
        and -1 <= ln.cap_requests <= MAX_AMOUNT
        and 0.0 <= ln.window_s < math.inf
        and type(ln.account) is str
        and ln.account != ""
    )


def check_lines(lines: Sequence[Line]) -> tuple[Line, ...]:
    """Validate lines at the ledger boundary: finite, non-negative amounts; caps ≥ -1; unique accounts."""
    out = tuple(ln if _plain(ln) else _checked(ln) for ln in lines)
    if len(out) > 1:
        accounts = [ln.account for ln in out]
        if len(set(accounts)) != len(accounts):
            raise ConfigError(f"a reservation touches each account once, got {accounts}")
    return out


def _checked(ln: Any) -> Line:
    """One line checked field by field, with an error naming the field (the slow path)."""
    if not isinstance(ln, Line):
        raise ConfigError(f"ledger lines must be budgets.Line tuples, got {type(ln).__name__}")
    if not isinstance(ln.account, str) or not ln.account:
        raise ConfigError(f"line account must be a non-empty string, got {ln.account!r}")
    name = f"line {ln.account!r}"
    for field in ("usd", "tokens"):
        _check_count(f"{name} {field} (a refund is not a reservation)", getattr(ln, field))
    for field in ("cap_usd", "cap_tokens", "cap_requests"):
        _check_count(f"{name} {field} (-1 = no cap)", getattr(ln, field), low=-1)
    window = ln.window_s
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 <= window < math.inf:
        raise ConfigError(f"{name} window_s must be a finite number ≥ 0, got {window!r}")
    return ln._replace(
        usd=int(ln.usd),
        tokens=int(ln.tokens),
        cap_usd=int(ln.cap_usd),
        cap_tokens=int(ln.cap_tokens),
        cap_requests=int(ln.cap_requests),
        window_s=float(window),
    )


def check_actual(usd: Any, tokens: Any) -> tuple[int, int]:
    """Validate settled amounts: whole, finite and non-negative (usage is never a refund)."""
    if type(usd) is int and type(tokens) is int and 0 <= usd <= MAX_AMOUNT and 0 <= tokens <= MAX_AMOUNT:
        return usd, tokens
    return (
        _check_count("settled nano-USD (usage cannot be negative)", usd),
        _check_count("settled tokens (usage cannot be negative)", tokens),
    )


def signature(lines: Sequence[Line]) -> tuple[tuple[str, int, int], ...]:
    """What an idempotency key is bound to: every account with its reserved amounts."""
    if len(lines) == 1:
        return ((lines[0].account, lines[0].usd, lines[0].tokens),)
    return tuple(sorted((ln.account, ln.usd, ln.tokens) for ln in lines))


def key_reused(key: str, held: Any, asked: Any) -> ConfigError:
    """The error for a key asked again with other amounts than the ones it is bound to."""
    return ConfigError(
        f"reservation key {key!r} is already bound to {list(held)}; it was asked again for {list(asked)}. "
        "An idempotency key names one call: use a new key for a new call"
    )


def _reservation(key: str, lines: tuple[Line, ...], fresh: bool) -> Reservation:
    if len(lines) == 1:
        return Reservation(key, lines, lines[0].usd, lines[0].tokens, fresh)
    return Reservation(
        key,
        lines,
        max((ln.usd for ln in lines), default=0),
        max((ln.tokens for ln in lines), default=0),
        fresh,
    )


class BudgetExceeded(RefusalError):
    """A call was refused before it was made: it would take a budget over its cap.

    Attributes name the budget, its scope key, the unit and the amounts (``spent``, ``reserved`` by
    calls in flight, ``requested`` by this call, ``cap``) so a caller can report or react.

    >>> exc = BudgetExceeded("conversation", "conversation=c1", "usd", 0.01, 0.0, 0.002, 0.011)
    >>> exc.budget, exc.unit, exc.cap
    ('conversation', 'usd', 0.011)
    >>> str(exc).split(" + ")[-1]
    '$0.002000 requested > $0.011000 cap; raise max_usd or shorten the task'
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

    def __reduce__(self) -> Any:  # picklable across processes (e.g. a process pool of agents)
        args = (self.budget, self.scope, self.unit, self.spent, self.reserved, self.requested, self.cap)
        return (type(self), args)


def exceeded(line: Line, unit: str, spent: int, reserved: int, requested: int, cap: int) -> BudgetExceeded:
    """A :class:`BudgetExceeded` for one line, amounts converted from ledger units."""
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


def row(account: str, meta: Line, su: int, ru: int, st: int, rt: int, n: int, in_window: int | None) -> dict:
    """One account as a report row (the same columns for every ledger)."""
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


class InProcessLedger:
    """A ledger for one process: one lock, integer arithmetic; thread-safe and asyncio-safe.

    A reservation lives until it is settled or released; the middleware releases in a ``finally``,
    so a failed or cancelled call never strands one (a process that dies takes this ledger with it;
    see :class:`RedisLedger` for leases that outlive a holder).

    Args:
        max_settled: how many settled keys are remembered (with their amounts) for idempotency.
        clock: time source (seconds); injectable for tests of windows.

    >>> ledger = InProcessLedger()
    >>> line = Line("b|global", "b", "global", 100, -1, -1, 0.0, 60, 0)
    >>> ledger.reserve("call-1", [line]).fresh, ledger.settle("call-1", 40, 0)
    (True, True)
    >>> ledger.accounts()[0]["spent_nano_usd"]
    40
    """

    def __init__(self, *, max_settled: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        # account -> [spent_usd, reserved_usd, spent_tokens, reserved_tokens, requests_total]
        self._acct: dict[str, list[int]] = {}
        self._meta: dict[str, Line] = {}
        self._requests: dict[str, deque[float]] = {}
        self._active: dict[str, Reservation] = {}
        self._done: OrderedDict[str, tuple] = OrderedDict()
        self._max_done = _check_count("max_settled", max_settled, low=1)
        self._overruns = 0
        if not callable(clock):
            raise ConfigError(f"clock must be a callable returning seconds (e.g. time.time), got {clock!r}")
        self.clock = clock

    def reserve(self, key: str, lines: Sequence[Line]) -> Reservation:
        """Reserve every line or none; raises :class:`BudgetExceeded` naming the first cap hit.

        Raises:
            ConfigError: a bad amount, or ``key`` already bound to other amounts.
        """
        check_key(key)
        lines = check_lines(lines)
        sig = signature(lines)
        with self._lock:
            held = self._active.get(key)
            if held is not None:
                if signature(held.lines) != sig:
                    raise key_reused(key, signature(held.lines), sig)
                return held._replace(fresh=False)
            if key in self._done:
                if self._done[key] != sig:
                    raise key_reused(key, self._done[key], sig)
                return _reservation(key, (), False)
            now = self.clock()
            self._check_caps(lines, now)
            self._book(lines, now)
            res = self._active[key] = _reservation(key, lines, True)
            return res

    def _check_caps(self, lines: tuple[Line, ...], now: float) -> None:
        for line in lines:
            acct = self._acct.get(line.account)
            su, ru, st, rt = (acct[0], acct[1], acct[2], acct[3]) if acct else (0, 0, 0, 0)
            if line.cap_usd >= 0 and su + ru + line.usd > line.cap_usd:
                raise exceeded(line, "usd", su, ru, line.usd, line.cap_usd)
            if line.cap_tokens >= 0 and st + rt + line.tokens > line.cap_tokens:
                raise exceeded(line, "tokens", st, rt, line.tokens, line.cap_tokens)
            if line.cap_requests >= 0:
                q = self._requests.get(line.account)
                if q is not None:
                    edge = now - line.window_s
                    while q and q[0] <= edge:
                        q.popleft()
                    if len(q) + 1 > line.cap_requests:
                        raise exceeded(line, "requests", len(q), 0, 1, line.cap_requests)

    def _book(self, lines: tuple[Line, ...], now: float) -> None:
        for line in lines:
            acct = self._acct.get(line.account)
            if acct is None:
                acct = self._acct[line.account] = [0, 0, 0, 0, 0]
                self._meta[line.account] = line
            acct[1] += line.usd
            acct[3] += line.tokens
            acct[4] += 1
            if line.cap_requests >= 0:
                self._requests.setdefault(line.account, deque()).append(now)

    def settle(self, key: str, usd: int, tokens: int) -> bool:
        """Replace the reservation by the actual amounts; False (no-op) if already settled/released."""
        usd, tokens = check_actual(usd, tokens)
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
            self._done[key] = signature(res.lines)
            if len(self._done) > self._max_done:
                self._done.popitem(last=False)
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

    def accounts(self) -> list[dict[str, Any]]:
        """One row per account: budget, scope, spent/reserved/cap in USD and tokens, requests."""
        with self._lock:
            now = self.clock()
            rows = []
            for account, (su, ru, st, rt, n) in self._acct.items():
                meta = self._meta[account]
                q = self._requests.get(account)
                in_window = sum(1 for t in q if t > now - meta.window_s) if q is not None else None
                rows.append(row(account, meta, su, ru, st, rt, n, in_window))
            return rows

    def overruns(self) -> int:
        """How many settled calls cost more than they reserved."""
        with self._lock:
            return self._overruns

    def in_flight(self) -> int:
        """Reservations not yet settled or released."""
        with self._lock:
            return len(self._active)
