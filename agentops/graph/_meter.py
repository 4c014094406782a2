"""Usage metering for graph and workflow turns (moves to :mod:`agentops.usage`)."""

from __future__ import annotations

import threading
from typing import Any

from ag2.events import ModelResponse, Usage
from ag2.middleware import BaseMiddleware, Middleware

from agentops.pricing import cost as usd_cost

__all__ = ["UsageMeter"]


class UsageMeter:
    """Thread- and asyncio-safe tally of model calls, tokens and USD cost, fed by AG2 middleware.

    ``Middleware(UsageMeter.Hook, meter=meter)`` (see :meth:`middleware`) adds every LLM call's
    ``Usage`` to the meter, including calls of attempts that later fail, and counts failed calls.
    Cost comes from :func:`agentops.pricing.cost` for the model the provider reported (or the
    config's model name when the provider reports none).
    """

    def __init__(self, model_name: str = "") -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self.calls = 0
        self.errors = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Usage | None, model: str | None, provider: str | None) -> float:
        """Record one call's usage; returns its cost."""
        usage = usage or Usage()
        name = model or self.model_name
        spent = usd_cost(usage, name, provider) if (usage.prompt_tokens or usage.completion_tokens) else 0.0
        with self._lock:
            self.calls += 1
            self.prompt_tokens += int(usage.prompt_tokens or 0)
            self.completion_tokens += int(usage.completion_tokens or 0)
            self.cost_usd += spent
        return spent

    async def metered(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        """Run one LLM call through ``call_next`` and record its usage (or its failure)."""
        try:
            response = await call_next(events, context)
        except BaseException:
            self.fail()
            raise
        self.add(response.usage, response.model, response.provider)
        return response

    def fail(self) -> None:
        """Count a call that raised."""
        with self._lock:
            self.calls += 1
            self.errors += 1

    def middleware(self) -> Middleware:
        """An AG2 middleware factory feeding this meter."""
        return Middleware(_MeterHook, meter=self)


class _MeterHook(BaseMiddleware):
    def __init__(self, event: Any, context: Any, *, meter: UsageMeter) -> None:
        super().__init__(event, context)
        self.meter = meter

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        return await self.meter.metered(call_next, events, context)
