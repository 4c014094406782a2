"""Admission queue for bursts: bounded concurrency, bounded waiting, priorities with aging; Redis-shared.

A burst of requests should neither run all at once (the model provider rate-limits, memory grows) nor
queue without bound. :class:`AdmissionQueue` lets at most ``capacity`` turns run at a time, lets at most
``max_waiting`` more wait, and refuses the rest at once (the service answers 503 with ``Retry-After``).
A waiter that is not admitted within ``max_wait_s`` gives up the same way. Memory stays bounded.

Order: every ticket gets an arrival number from one counter; its score is ``arrival + aging[priority]``
(in arrival positions), lowest first. ``high`` goes first, but a ``low`` ticket is passed by at most
``aging["low"]`` later arrivals, so no priority starves (fairness by aging), and within a priority the
order is first come, first served. The order depends on arrival order only, never on a clock.

Stores: :class:`MemoryQueueStore` (one process; thread-safe) and :class:`RedisQueueStore` (every replica
using the same ``namespace`` shares one capacity and one queue). The Redis store keeps waiting tickets in
a sorted set scored as above and running ones in a sorted set scored by lease expiry; enqueue, admit and
release are Lua scripts (atomic, one round trip; Redis ``TIME`` is the lease clock, so replicas need not
agree on time). Leases make it crash-safe: a replica that dies holding a slot frees it after
``lease_s``, and a waiter that stops polling is dropped after ``waiter_lease_s``.

Why not a library: job queues (``rq``, ``arq``, ``saq``, ``celery``) move work to workers and hand back
results later; the service needs *admission* for a request that is already open, answered by the
process that holds the connection. Redis locks and semaphores on PyPI (``redis.lock``, ``pottery``'s
``Redlock``/``BoundedSemaphore``) have no priorities and no bounded waiting line, and ``limits`` counts
rates, not concurrency. What is left is three short scripts over two sorted sets, written here.
``BZPOPMIN`` would wake one waiter per release, but a waiter must leave the line when its client gives
up, which a blocked pop cannot do, so waiters poll (``poll_s``, 20 ms by default for Redis).

Example::

    queue = AdmissionQueue(RedisQueueStore(redis, namespace="support"), capacity=4, max_waiting=32)
    async with queue.slot("low"):
        reply = await agent.ask(prompt)
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

from agentops import _identity  # noqa: F401
from agentops.errors import AgentOpsError, ConfigError

__all__ = [
    "DEFAULT_AGING",
    "AdmissionQueue",
    "MemoryQueueStore",
    "QueueFull",
    "QueueStore",
    "RedisQueueStore",
]

DEFAULT_AGING: Mapping[str, int] = {"high": 0, "normal": 4, "low": 16}
"""Priority → how many later arrivals may pass a ticket of that priority."""


class QueueFull(AgentOpsError):
    """The waiting line is full, or a waiter was not admitted in time; ``retry_after_s`` says when to retry."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueStore(Protocol):
    """Where tickets live: ``enqueue`` → ticket or ``None`` (full), ``admit``, ``release``, ``cancel``."""

    def enqueue(self, offset: int, rank: int, max_waiting: int) -> str | None: ...
    def admit(self, ticket: str, capacity: int) -> bool | None: ...
    def release(self, ticket: str) -> None: ...
    def cancel(self, ticket: str) -> None: ...
    def counts(self) -> tuple[int, int]: ...
    def ping(self) -> bool: ...


def _score(arrival: int, offset: int, rank: int) -> float:
    # ties between priorities at one position go to the higher priority (lower rank)
    return float((arrival + offset) * 8 + rank)


class MemoryQueueStore:
    """Tickets in one process (thread-safe: every operation holds a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals = itertools.count()
        self._waiting: dict[str, float] = {}
        self._active: set[str] = set()

    def enqueue(self, offset: int, rank: int, max_waiting: int) -> str | None:
        with self._lock:
            if len(self._waiting) >= max_waiting:
                return None
            ticket = uuid.uuid4().hex
            self._waiting[ticket] = _score(next(self._arrivals), offset, rank)
            return ticket

    def admit(self, ticket: str, capacity: int) -> bool | None:
        """``True`` admitted, ``False`` keep waiting, ``None`` the ticket is gone."""
        with self._lock:
            if ticket not in self._waiting:
                return None
            free = capacity - len(self._active)
            if free <= 0:
                return False
            ahead = sorted(self._waiting, key=self._waiting.__getitem__)[:free]
            if ticket not in ahead:
                return False
            del self._waiting[ticket]
            self._active.add(ticket)
            return True

    def release(self, ticket: str) -> None:
        with self._lock:
            self._active.discard(ticket)

    def cancel(self, ticket: str) -> None:
        with self._lock:
            self._waiting.pop(ticket, None)

    def counts(self) -> tuple[int, int]:
        """``(running, waiting)``."""
        with self._lock:
            return len(self._active), len(self._waiting)

    def ping(self) -> bool:
        return True


_PURGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, d in ipairs(dead) do redis.call('ZREM', KEYS[1], d) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
"""
# KEYS: waiting, active, heartbeats, arrivals. ARGV: ticket, offset, rank, max_waiting, waiter_lease_ms
_ENQUEUE = (
    _PURGE
    + """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
local arrival = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[1], (arrival + tonumber(ARGV[2])) * 8 + tonumber(ARGV[3]), ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[1])
return 1
"""
)
# KEYS: waiting, active, heartbeats. ARGV: ticket, capacity, lease_ms, waiter_lease_ms
_ADMIT = (
    _PURGE
    + """
local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
if not rank then return -1 end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[2])
if rank >= free then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)


class RedisQueueStore:
    """Tickets in Redis, shared by every replica using ``namespace`` (atomic Lua scripts; see module doc).

    Args:
        client: a ``redis.Redis`` client (synchronous; calls are short).
        namespace: key prefix; replicas of one service share it.
        lease_s: a running turn's slot is reclaimed after this long (set it above the turn timeout).
        waiter_lease_s: a waiter that has not polled for this long is dropped.
    """

    def __init__(self, client: Any, namespace: str = "agentops-queue", *, lease_s: float = 120.0,
                 waiter_lease_s: float = 10.0) -> None:  # fmt: skip
        if lease_s <= 0 or waiter_lease_s <= 0:
            raise ConfigError("lease_s and waiter_lease_s must be > 0 seconds")
        self.client, self.namespace = client, namespace
        self.keys = [f"{namespace}:{k}" for k in ("waiting", "active", "heartbeats", "arrivals")]
        self.lease_ms, self.waiter_lease_ms = int(lease_s * 1000), int(waiter_lease_s * 1000)
        self._enqueue = client.register_script(_ENQUEUE)
        self._admit = client.register_script(_ADMIT)

    def enqueue(self, offset: int, rank: int, max_waiting: int) -> str | None:
        ticket = uuid.uuid4().hex
        args = [ticket, offset, rank, max_waiting, self.waiter_lease_ms]
        return ticket if int(self._enqueue(keys=self.keys, args=args)) == 1 else None

    def admit(self, ticket: str, capacity: int) -> bool | None:
        found = int(self._admit(keys=self.keys[:3], args=[ticket, capacity, self.lease_ms, self.waiter_lease_ms]))
        return None if found < 0 else bool(found)

    def release(self, ticket: str) -> None:
        self.client.zrem(self.keys[1], ticket)

    def cancel(self, ticket: str) -> None:
        pipe = self.client.pipeline()
        pipe.zrem(self.keys[0], ticket).zrem(self.keys[2], ticket)
        pipe.execute()

    def counts(self) -> tuple[int, int]:
        """``(running, waiting)`` across every replica."""
        pipe = self.client.pipeline()
        pipe.zcard(self.keys[1]).zcard(self.keys[0])
        running, waiting = pipe.execute()
        return int(running), int(waiting)

    def ping(self) -> bool:
        return bool(self.client.ping())

    def clear(self) -> None:
        """Delete this namespace's keys (tests, demos)."""
        self.client.delete(*self.keys)


class AdmissionQueue:
    """At most ``capacity`` turns at once, at most ``max_waiting`` waiting, priorities with aging.

    Args:
        store: :class:`MemoryQueueStore` (default; one process) or :class:`RedisQueueStore` (replicas).
        capacity: turns running at once (across replicas with Redis).
        max_waiting: waiting line length; beyond it :meth:`slot` raises :class:`QueueFull` at once.
        max_wait_s: a waiter not admitted within this raises :class:`QueueFull`.
        aging: priority → offset in arrival positions (see module doc); keys are the valid priorities.
        poll_s: how often a waiter asks again (default 5 ms in memory, 20 ms with Redis).
    """

    def __init__(
        self,
        store: QueueStore | None = None,
        *,
        capacity: int = 4,
        max_waiting: int = 32,
        max_wait_s: float = 30.0,
        aging: Mapping[str, int] = DEFAULT_AGING,
        poll_s: float | None = None,
    ) -> None:
        for name, value in (("capacity", capacity), ("max_waiting", max_waiting)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number ≥ 1, got {value!r}")
        if not aging or any(not isinstance(v, int) or v < 0 for v in aging.values()):
            raise ConfigError("aging must map each priority name to a whole number ≥ 0, e.g. {'high': 0, 'low': 16}")
        if max_wait_s <= 0:
            raise ConfigError(f"max_wait_s must be > 0 seconds, got {max_wait_s!r}")
        self.store: QueueStore = store if store is not None else MemoryQueueStore()
        self.capacity, self.max_waiting, self.max_wait_s = capacity, max_waiting, max_wait_s
        self.aging = dict(aging)
        self._ranks = {p: i for i, p in enumerate(sorted(self.aging, key=self.aging.__getitem__))}
        self.poll_s = poll_s if poll_s is not None else (0.005 if isinstance(self.store, MemoryQueueStore) else 0.02)
        self.turn_s = 1.0  # running mean of turn durations, for Retry-After

    def check_priority(self, priority: str) -> str:
        if priority not in self.aging:
            raise ConfigError(f"unknown priority {priority!r}; choose one of: {', '.join(self.aging)}")
        return priority

    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: the line ahead of it divided among the slots."""
        _running, waiting = self.store.counts()
        return max(1, round(self.turn_s * (waiting + 1) / self.capacity))

    def ping(self) -> bool:
        return self.store.ping()

    async def _admit(self, ticket: str) -> bool:
        if isinstance(self.store, MemoryQueueStore):
            admitted = self.store.admit(ticket, self.capacity)
        else:  # a network round trip: off the event loop
            admitted = await asyncio.to_thread(self.store.admit, ticket, self.capacity)
        if admitted is None:
            raise QueueFull("the waiting ticket expired (waiter lease)", retry_after_s=self.retry_after_s())
        return admitted

    @asynccontextmanager
    async def slot(self, priority: str = "normal") -> AsyncIterator[None]:
        """Wait (bounded) for a slot; raises :class:`QueueFull` when the line is full or the wait too long.

        The slot is released on exit, also when the turn fails or is cancelled.
        """
        rank = self._ranks[self.check_priority(priority)]
        ticket = self.store.enqueue(self.aging[priority], rank, self.max_waiting)
        if ticket is None:
            raise QueueFull(f"the waiting line is full ({self.max_waiting})", retry_after_s=self.retry_after_s())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        try:
            while not await self._admit(ticket):
                if loop.time() >= deadline:
                    raise QueueFull(f"not admitted within {self.max_wait_s:g} s", retry_after_s=self.retry_after_s())
                await asyncio.sleep(self.poll_s)
        except BaseException:
            self.store.cancel(ticket)
            raise
        started = loop.time()
        try:
            yield
        finally:
            self.store.release(ticket)
            self.turn_s = 0.8 * self.turn_s + 0.2 * (loop.time() - started)
