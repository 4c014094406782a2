"""Idempotency keys for tools with side effects: a tool that is not idempotent runs at most once per key.

Retrying only the model call (:class:`~agentops.resilience.RetryPolicy`) never re-runs a tool. What still
does is a *caller* retrying a whole request — a queue worker, a load balancer, a user pressing the
button again — after the tool ran and something later failed: the model asks for the same tool again
and a second ticket is opened, a second refund paid. :meth:`IdempotencyLedger.once` is a tool-level AG2
hook that records each execution under a key — the request's idempotency key (``variables=
{"idempotency_key": ...}`` on ``ask``, the way payment APIs take an ``Idempotency-Key`` header), the tool
name and its canonical arguments — and answers a repeat from the record instead of running the tool.
A failed execution is recorded too: whether its side effect happened is unknown, so it is never re-run.

Two concurrent calls with the same key: the first claims it, the second waits for the first's result.
Records live in memory (one process; thread-safe) or in Redis (``SET NX`` claims, shared by every
worker), and expire after ``ttl_s``.

Why hand-written: idempotency-key libraries on PyPI are HTTP middleware for web frameworks; what an
agent needs is keyed on a tool call, inside AG2's tool hook.

Example::

    ledger = IdempotencyLedger(redis_url="redis://127.0.0.1:6379/0")

    @ag2.tool(middleware=[ledger.once()])
    async def open_ticket(order_id: str) -> str: ...

    await agent.ask("Open a ticket for order 17", variables={"idempotency_key": "req-17"})
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ag2.events import ToolErrorEvent, ToolResultEvent

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError, RefusalError

__all__ = ["IdempotencyLedger", "ToolNotRerun"]

_PENDING = "pending"


class ToolNotRerun(RefusalError):
    """A tool that is not idempotent already ran (and failed, or is still running) for this key."""


def _text_of(result: Any) -> str:
    parts = getattr(getattr(result, "result", None), "parts", None) or []
    out = []
    for part in parts:
        content = getattr(part, "content", None)
        out.append(content if isinstance(content, str) else json.dumps(getattr(part, "data", None), default=str))
    return " ".join(out)


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return arguments or ""


class _MemoryRecords:
    def __init__(self) -> None:
        self._data: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    async def claim(self, key: str, ttl_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            found = self._data.get(key)
            if found is not None and found[0] > now:
                return False
            self._data[key] = (now + ttl_s, _PENDING)
            return True

    async def get(self, key: str) -> str | None:
        with self._lock:
            found = self._data.get(key)
            return found[1] if found is not None and found[0] > time.monotonic() else None

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl_s, value)


class _RedisRecords:
    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url)

    async def claim(self, key: str, ttl_s: float) -> bool:
        return bool(await self._redis.set(key, _PENDING, nx=True, ex=max(1, int(ttl_s))))

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(key)
        return value.decode() if value is not None else None

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        await self._redis.set(key, value, ex=max(1, int(ttl_s)))

    async def close(self) -> None:
        await self._redis.aclose()


class IdempotencyLedger:
    """Records tool executions by idempotency key; :meth:`once` makes a tool at-most-once.

    Args:
        redis_url: share records across processes through Redis (default: this process only).
        prefix: Redis key prefix.
        ttl_s: how long a record (and a claim) lives.
        key_variable: the ``ask(variables=...)`` entry holding the request's idempotency key; without
            it, the key is the tool call's id (protects against re-delivery of the same call only).
        wait_s: how long a concurrent duplicate waits for the first execution's result.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        prefix: str = "agentops:idem:",
        ttl_s: float = 86_400,
        key_variable: str = "idempotency_key",
        wait_s: float = 30.0,
        poll_s: float = 0.01,
    ) -> None:
        if ttl_s <= 0 or wait_s < 0 or poll_s <= 0:
            raise ConfigError("IdempotencyLedger needs ttl_s > 0, wait_s ≥ 0 and poll_s > 0")
        self._records = _RedisRecords(redis_url) if redis_url else _MemoryRecords()
        self.prefix, self.ttl_s, self.key_variable = prefix, ttl_s, key_variable
        self.wait_s, self.poll_s = wait_s, poll_s
        self.executed = 0
        self.replayed = 0
        self._lock = threading.Lock()

    def key_for(self, event: Any, context: Any) -> str:
        """The record key of one tool call: request key (or call id), tool name, hash of the arguments."""
        scope = (getattr(context, "variables", None) or {}).get(self.key_variable)
        scope = f"req:{scope}" if scope else f"call:{event.id}"
        digest = hashlib.sha256(_canonical(event.arguments).encode()).hexdigest()[:32]
        return f"{self.prefix}{scope}:{event.name}:{digest}"

    def once(self) -> Callable[..., Awaitable[Any]]:
        """A tool-level AG2 hook: run the tool at most once per key; a repeat gets the recorded result."""

        async def at_most_once(call_next: Any, event: Any, context: Any) -> Any:
            key = self.key_for(event, context)
            if await self._records.claim(key, self.ttl_s):
                result = await call_next(event, context)
                ok = not isinstance(result, ToolErrorEvent)
                text = _text_of(result) if ok else f"{type(result.error).__name__}: {result.error}"
                await self._records.put(key, json.dumps({"ok": ok, "text": text}), self.ttl_s)
                with self._lock:
                    self.executed += 1
                return result
            return await self._replay(key, event)

        at_most_once.__qualname__ = "IdempotencyLedger.once"
        return at_most_once

    async def _replay(self, key: str, event: Any) -> Any:
        deadline = time.monotonic() + self.wait_s
        value = await self._records.get(key)
        while value == _PENDING and time.monotonic() < deadline:
            await asyncio.sleep(self.poll_s)
            value = await self._records.get(key)
        with self._lock:
            self.replayed += 1
        if value is None or value == _PENDING:
            return ToolErrorEvent.from_call(
                event, ToolNotRerun(f"tool {event.name!r} is already running for this request; it is not run twice")
            )
        record = json.loads(value)
        if record["ok"]:
            return ToolResultEvent.from_call(event, result=record["text"])
        return ToolErrorEvent.from_call(
            event,
            ToolNotRerun(
                f"tool {event.name!r} already ran for this request and failed ({record['text']}); "
                "it is not idempotent, so it is not run again"
            ),
        )

    async def close(self) -> None:
        """Close the Redis connection pool (no-op in memory)."""
        if isinstance(self._records, _RedisRecords):
            await self._records.close()
