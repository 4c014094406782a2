"""Parallel fan-out of independent subtasks, and one HTTP client per provider per process.

:func:`fan_out` runs independent asks of an AG2 agent concurrently with a concurrency limit (an
``asyncio.Semaphore``), keeping input order. Inside one agent, AG2's own ``TaskConfig(max_concurrency=)``
gives the model a ``run_subtasks`` tool that does the same; use that when the *model* decides how to
split the work, and :func:`fan_out` when your code already knows the subtasks.

:func:`shared_http_client` returns one ``httpx.AsyncClient`` per (base URL, timeout) per process, to
pass as ``OpenAIConfig(http_client=...)``: every agent and every ask then reuses the same connection
pool (TLS handshakes and TCP set-up paid once) instead of each config opening its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from agentops.errors import ConfigError, MissingDependencyError

__all__ = ["fan_out", "shared_http_client"]

_clients: dict[tuple[str, float], Any] = {}
_clients_lock = threading.Lock()


async def fan_out(agent: Any, tasks: Sequence[str], *, concurrency: int = 4, **ask_kwargs: Any) -> list[Any]:
    """``agent.ask(task)`` for every task, at most ``concurrency`` at once; replies in task order.

    The first exception propagates after the other in-flight asks finish (``asyncio.gather`` semantics
    with ``return_exceptions=False``).
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be ≥ 1, got {concurrency!r}")
    gate = asyncio.Semaphore(concurrency)

    async def one(task: str) -> Any:
        async with gate:
            return await agent.ask(task, **ask_kwargs)

    return list(await asyncio.gather(*(one(t) for t in tasks)))


def shared_http_client(base_url: str = "https://api.openai.com/v1", *, timeout_s: float = 60.0) -> Any:
    """The process-wide ``httpx.AsyncClient`` for one provider endpoint (created on first use).

    Example::

        cfg = OpenAIConfig(model="gpt-4o-mini", http_client=shared_http_client())
    """
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError("shared_http_client needs httpx: pip install 'ag2[openai]'") from None
    key = (base_url.rstrip("/"), float(timeout_s))
    with _clients_lock:
        if key not in _clients or _clients[key].is_closed:
            _clients[key] = httpx.AsyncClient(
                timeout=timeout_s, limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)
            )
        return _clients[key]
