"""Circuit breakers per provider/model: closed → open → half-open → closed, on an injectable clock.

A dependency that keeps failing is not called for a while: after ``failure_threshold`` consecutive
failures the circuit **opens** and calls fail at once with :class:`CircuitOpen` (a fallback chain moves
on to the next model without paying for timeouts). After ``reset_timeout_s`` it goes **half-open** and
lets ``half_open_max_calls`` probes through; ``success_threshold`` successful probes **close** it, one
failed probe opens it again. Only failures :func:`~agentops.errors.is_retryable` marks count (a 429,
a 5xx, a timeout, a dropped connection, an unusable answer); a bad request or a refusal is the
caller's problem, not the provider's, and leaves the counts alone.

Every transition is kept (:attr:`CircuitBreaker.transitions`) and reported to listeners as
``resilience.breaker``; :class:`Breakers` holds one breaker per ``provider/model`` and reports all
states at once (for :mod:`agentops.resilience.health`).

State lives in a store: in memory (one process; thread-safe) or in Redis (:class:`RedisBreakerStore`,
shared by every process using the same key). The state machine is written once, as pure functions;
the Redis store applies them inside an optimistic transaction (``WATCH``/``MULTI``), so concurrent
processes never lose an update. With Redis, use a clock every process agrees on (``time.time``).

Why not a library: ``pybreaker`` (1.4) runs coroutines only through Tornado's ``gen.coroutine``, holds
a threading lock across the awaited call, reads ``datetime.now`` (no injectable clock, so transitions
cannot be tested on simulated time) and talks to Redis with blocking calls, at one-second resolution.
``aiobreaker`` (its asyncio fork, last released 2021) also reads ``datetime.now``; ``purgatory`` is
asyncio-native but reads ``time.time`` and pins ``redis<6``. The machine itself is small.

Example::

    breakers = Breakers(BreakerSettings(failure_threshold=5, reset_timeout_s=30), listeners=[telemetry.listener])
    breaker = breakers.for_model(primary_config)
    response = await breaker.call(client_call)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from pydantic import Field

from agentops import _identity  # noqa: F401
from agentops.config import Spec
from agentops.errors import ConfigError, ProviderError, is_retryable
from agentops.listeners import BREAKER, Listener, checked_listeners, notify

__all__ = [
    "BreakerSettings",
    "Breakers",
    "CircuitBreaker",
    "CircuitOpen",
    "MemoryBreakerStore",
    "RedisBreakerStore",
    "State",
]

State = Literal["closed", "open", "half_open"]
Outcome = Literal["success", "failure", "ignored"]
T = TypeVar("T")


class CircuitOpen(ProviderError):
    """The circuit for a dependency is open: it was not called. ``retry_after`` says when it may be."""

    retryable = False
    error_type = "circuit_open"

    def __init__(self, breaker: str, retry_after: float) -> None:
        super().__init__(
            f"circuit {breaker!r} is open after repeated failures; not calling it for {retry_after:.2f} s more "
            "(add a fallback model, or wait)",
            retry_after=round(max(retry_after, 0.0), 3),
        )
        self.breaker = breaker


class BreakerSettings(Spec):
    """When a circuit opens and how it recovers.

    Args:
        failure_threshold: consecutive failures that open a closed circuit.
        reset_timeout_s: seconds an open circuit waits before letting probes through (half-open).
        half_open_max_calls: probes in flight at once while half-open.
        success_threshold: successful probes that close a half-open circuit.
    """

    failure_threshold: int = Field(5, ge=1)
    reset_timeout_s: float = Field(30.0, gt=0)
    half_open_max_calls: int = Field(1, ge=1)
    success_threshold: int = Field(1, ge=1)


# --------------------------------------------------------------------------------------------------
# The state machine (pure functions: one implementation for every store)
# --------------------------------------------------------------------------------------------------

_INITIAL: dict[str, Any] = {"state": "closed", "failures": 0, "opened_at": 0.0, "probes": 0, "successes": 0}
Change = tuple[str, str] | None


def _opened(now: float) -> dict[str, Any]:
    return {"state": "open", "failures": 0, "opened_at": now, "probes": 0, "successes": 0}


def on_acquire(state: Mapping[str, Any], now: float, s: BreakerSettings) -> tuple[dict[str, Any], bool, Change]:
    """May a call go through now? Returns the new state, the answer and the transition (if any)."""
    new, change = dict(state), None
    if new["state"] == "open" and now - new["opened_at"] >= s.reset_timeout_s:
        new.update(state="half_open", probes=0, successes=0)
        change = ("open", "half_open")
    if new["state"] == "closed":
        return new, True, change
    if new["state"] == "half_open" and new["probes"] < s.half_open_max_calls:
        new["probes"] += 1
        return new, True, change
    return new, False, change


def on_record(
    state: Mapping[str, Any], outcome: Outcome, now: float, s: BreakerSettings
) -> tuple[dict[str, Any], Change]:
    """Account for a finished call. Returns the new state and the transition (if any)."""
    new = dict(state)
    if new["state"] == "closed":
        if outcome == "success":
            new["failures"] = 0
        elif outcome == "failure":
            new["failures"] += 1
            if new["failures"] >= s.failure_threshold:
                return _opened(now), ("closed", "open")
        return new, None
    if new["state"] == "half_open":
        new["probes"] = max(0, new["probes"] - 1)
        if outcome == "failure":
            return _opened(now), ("half_open", "open")
        if outcome == "success":
            new["successes"] += 1
            if new["successes"] >= s.success_threshold:
                return dict(_INITIAL), ("half_open", "closed")
        return new, None
    return new, None  # open: a late result of a call admitted before the circuit opened changes nothing


# --------------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------------


class BreakerStore(Protocol):
    """Where circuit state lives; ``update`` applies ``fn`` atomically and returns its result."""

    async def update(self, name: str, fn: Callable[[dict[str, Any]], tuple[dict[str, Any], Any]]) -> Any: ...


class MemoryBreakerStore:
    """State in this process; thread-safe."""

    def __init__(self) -> None:
        self._states: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    async def update(self, name: str, fn: Callable[[dict[str, Any]], tuple[dict[str, Any], Any]]) -> Any:
        with self._lock:
            new, result = fn(dict(self._states.get(name, _INITIAL)))
            self._states[name] = new
            return result


class RedisBreakerStore:
    """State in a Redis hash per breaker (``<prefix><name>``), shared across processes.

    Args:
        url: ``redis://host:port/db``.
        prefix: key prefix.
        ttl_s: keys expire after this long without an update (a forgotten model leaves nothing behind).
    """

    def __init__(self, url: str, *, prefix: str = "agentops:breaker:", ttl_s: int = 86_400) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - redis is a core dependency
            raise ConfigError(f"RedisBreakerStore needs the redis package: {exc}") from None
        self.url, self.prefix, self.ttl_s = url, prefix, ttl_s
        self._redis = aioredis.Redis.from_url(url)

    async def update(self, name: str, fn: Callable[[dict[str, Any]], tuple[dict[str, Any], Any]]) -> Any:
        from redis.exceptions import WatchError

        key = self.prefix + name
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    new, result = fn(_decode(raw) if raw else dict(_INITIAL))
                    pipe.multi()
                    pipe.hset(key, mapping={k: str(v) for k, v in new.items()})
                    pipe.expire(key, self.ttl_s)
                    await pipe.execute()
                    return result
                except WatchError:  # another process changed it: read again
                    continue

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def _decode(raw: Mapping[bytes, bytes]) -> dict[str, Any]:
    d = {k.decode(): v.decode() for k, v in raw.items()}
    return {
        "state": d.get("state", "closed"),
        "failures": int(d.get("failures", 0)),
        "opened_at": float(d.get("opened_at", 0.0)),
        "probes": int(d.get("probes", 0)),
        "successes": int(d.get("successes", 0)),
    }


# --------------------------------------------------------------------------------------------------
# Breakers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """One state change: when (on the breaker's clock), which breaker, from and to."""

    at: float
    breaker: str
    source: str
    target: str


class CircuitBreaker:
    """One circuit. Safe under threads and asyncio (the store is atomic; counters take a lock).

    :attr:`state` is the state as of this process's last call (a Redis-backed breaker may have been moved
    by another process since), except that an open circuit whose reset timeout has passed reads
    ``half_open``: the next call will be let through as a probe. A circuit nobody calls stays there.
    """

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        store: BreakerStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.name = name
        self.settings = _settings(settings, "CircuitBreaker")
        self.store: BreakerStore = store or MemoryBreakerStore()
        self.clock = clock
        self.listeners = checked_listeners(listeners, "CircuitBreaker")
        self._state: State = "closed"
        self._opened_at = 0.0
        self.transitions: list[Transition] = []
        self.counts: dict[str, int] = {"allowed": 0, "rejected": 0, "success": 0, "failure": 0, "ignored": 0}
        self._lock = threading.Lock()

    def _note(self, now: float, state: Mapping[str, Any], change: Change, counter: str) -> None:
        with self._lock:
            self._state, self._opened_at = state["state"], state["opened_at"]
            self.counts[counter] += 1
            if change:
                self.transitions.append(Transition(now, self.name, *change))
        if change:
            notify(self.listeners, BREAKER, {"breaker": self.name, "from": change[0], "to": change[1], "at": now})

    @property
    def state(self) -> State:
        """``closed``, ``open`` or ``half_open`` (see the class docstring)."""
        with self._lock:
            state, opened_at = self._state, self._opened_at
        if state == "open" and self.clock() - opened_at >= self.settings.reset_timeout_s:
            return "half_open"
        return state

    async def acquire(self) -> None:
        """Let one call through or raise :class:`CircuitOpen`."""
        now, s = self.clock(), self.settings

        def step(state: dict[str, Any]) -> tuple[dict[str, Any], tuple[bool, dict[str, Any], Change]]:
            new, allowed, change = on_acquire(state, now, s)
            return new, (allowed, new, change)

        allowed, new, change = await self.store.update(self.name, step)
        self._note(now, new, change, "allowed" if allowed else "rejected")
        if not allowed:
            wait = new["opened_at"] + s.reset_timeout_s - now if new["state"] == "open" else 0.0
            raise CircuitOpen(self.name, wait)

    async def record(self, outcome: Outcome) -> None:
        """Account for a call that :meth:`acquire` let through."""
        now, s = self.clock(), self.settings

        def step(state: dict[str, Any]) -> tuple[dict[str, Any], tuple[dict[str, Any], Change]]:
            new, change = on_record(state, outcome, now, s)
            return new, (new, change)

        new, change = await self.store.update(self.name, step)
        self._note(now, new, change, outcome)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()`` through the circuit: retryable failures count, others are ignored."""
        await self.acquire()
        try:
            result = await fn()
        except BaseException as exc:
            await self.record("failure" if isinstance(exc, Exception) and is_retryable(exc) else "ignored")
            raise
        await self.record("success")
        return result


def _settings(settings: Any, owner: str) -> BreakerSettings:
    if settings is None:
        return BreakerSettings()
    if not isinstance(settings, BreakerSettings):
        raise ConfigError(
            f"{owner}: settings must be a BreakerSettings, got {type(settings).__name__}; pass e.g. "
            "BreakerSettings(failure_threshold=5, reset_timeout_s=30)"
        )
    return settings


class Breakers:
    """One :class:`CircuitBreaker` per dependency (``provider/model``), sharing settings, clock and store."""

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        store: BreakerStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.settings = _settings(settings, "Breakers")
        self.store: BreakerStore = store or MemoryBreakerStore()
        self.clock = clock
        self.listeners = checked_listeners(listeners, "Breakers")
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called ``name`` (created on first use)."""
        with self._lock:
            found = self._breakers.get(name)
            if found is None:
                found = CircuitBreaker(
                    name, self.settings, store=self.store, clock=self.clock, listeners=self.listeners
                )
                self._breakers[name] = found
            return found

    def for_model(self, config: Any) -> CircuitBreaker:
        """The breaker of an AG2 ``ModelConfig``: named ``provider/model``."""
        return self.get(dependency_name(config))

    def states(self) -> dict[str, str]:
        """Name → state of every breaker created so far."""
        with self._lock:
            return {name: b.state for name, b in self._breakers.items()}

    def transitions(self) -> list[Transition]:
        """Every transition of every breaker, in time order."""
        with self._lock:
            found = [t for b in self._breakers.values() for t in b.transitions]
        return sorted(found, key=lambda t: t.at)


def dependency_name(config: Any) -> str:
    """``provider/model`` of an AG2 ``ModelConfig`` (the name of its breaker and bulkhead)."""
    provider = getattr(config, "provider", "model")
    provider = getattr(provider, "value", provider)
    return f"{provider}/{getattr(config, 'model', type(config).__name__)}"
