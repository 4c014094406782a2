"""Intermediate-step caching: memoise an expensive deterministic step (a plan, a retrieval) on the same
backends as the response cache.

The key is the step name, a version string (bump it when the step's code or prompt changes) and a
canonical JSON of the arguments; the value must be JSON-serialisable. Exceptions are never cached.

Example::

    @cached_step(backend, ttl_s=600, version="v2")
    async def retrieve(query: str, k: int = 3) -> list[str]: ...
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from agentops.caching.backends import CacheBackend
from agentops.errors import ConfigError

__all__ = ["cached_step", "step_key"]

F = TypeVar("F", bound=Callable[..., Any])


def step_key(name: str, version: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``step:<name>:<version>:<sha256 of the canonical arguments>``."""
    try:
        blob = json.dumps([list(args), kwargs], sort_keys=True, separators=(",", ":"))
    except TypeError as exc:
        raise ConfigError(f"cached step {name!r}: arguments must be JSON-serialisable ({exc})") from None
    return f"step:{name}:{version}:{hashlib.sha256(blob.encode()).hexdigest()}"


def cached_step(
    backend: CacheBackend, *, ttl_s: float | None = 3600.0, version: str = "v1", name: str | None = None
) -> Callable[[F], F]:
    """Decorate a sync or async function so repeated calls with equal arguments are served from ``backend``.

    The wrapper gains ``.hits`` / ``.misses`` counters and ``.invalidate()`` (drops this step's entries).
    """

    def deco(fn: F) -> F:
        step = name or fn.__qualname__
        sig = inspect.signature(fn)
        lock = threading.Lock()
        counts = {"hits": 0, "misses": 0}

        def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return step_key(step, version, (), dict(bound.arguments))

        def lookup(key: str) -> tuple[bool, Any]:
            raw = backend.get(key)
            with lock:
                counts["hits" if raw is not None else "misses"] += 1
            return (True, json.loads(raw)) if raw is not None else (False, None)

        def store(key: str, value: Any) -> None:
            try:
                backend.set(key, json.dumps(value), ttl_s=ttl_s, tags=(f"step:{step}",))
            except TypeError as exc:
                raise ConfigError(
                    f"cached step {step!r} returned a value that is not JSON-serialisable ({exc})"
                ) from None

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                key = key_of(args, kwargs)
                found, value = lookup(key)
                if found:
                    return value
                value = await fn(*args, **kwargs)
                store(key, value)
                return value

            wrapper: Any = awrapper
        else:

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                key = key_of(args, kwargs)
                found, value = lookup(key)
                if found:
                    return value
                value = fn(*args, **kwargs)
                store(key, value)
                return value

        wrapper.stats = counts
        wrapper.invalidate = lambda: backend.invalidate_prefix(f"step:{step}:")
        return wrapper  # type: ignore[return-value]

    return deco
