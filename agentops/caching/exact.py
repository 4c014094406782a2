"""Exact response cache for AG2: a ``ModelConfig`` wrapper keyed on the canonical request.

AG2 v1 has no response cache. :class:`CachedModel` wraps any ``ModelConfig`` (offline or a real
provider) so an agent, its middleware (budgets, guardrails, telemetry) and evals are unchanged: on a
hit the wrapped client is never called and the response carries **no usage**, so meters and budgets
see no spend and the cache's ``stats`` record the tokens and USD saved.

The key (:func:`request_key`) is a SHA-256 of: tenant, provider, model, system prompt, the
conversation as rendered for the model (AG2's ``render_for_prompt``: no timestamps, no event or
tool-call ids), the tools with their JSON schemas, the response schema and the sampling parameters
of the config. Same request in another process → same key (tested).

Never stored: errors (they propagate), refusals/filtered or truncated answers (``finish_reason`` not
``stop``/``tool_calls``), empty answers, tool-call turns unless every called tool is declared
side-effect free (``safe_tools``), and anything the guardrails would redact (request or answer).
Streaming: the client publishes chunks live; the cache stores the final whole response only, and a
hit publishes the whole message once — cached whole or not at all.
Tenants: keys start with the tenant, so one tenant's answer is never served to another unless
``share_across_tenants=True``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ag2.config import LLMClient, ModelConfig
from ag2.events import (
    BaseEvent,
    ModelRequest,
    ModelResponse,
    TextInput,
    ToolCallEvent,
    ToolCallsEvent,
    ToolResultEvent,
    Usage,
    is_conversational,
    render_for_prompt,
)

from agentops.caching.backends import CacheBackend, MemoryBackend
from agentops.errors import ConfigError

__all__ = ["CacheStats", "CachedModel", "ResponseCache", "canonical_request", "request_key"]

_SAMPLING = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "frequency_penalty",
    "presence_penalty",
    "extra_body",
)
_CACHEABLE_FINISH = {"stop", "tool_calls", None}
# Per-call echoes of what a ModelResponse / ToolResultsEvent already holds; their repr carries call ids.
_ECHOES = (ToolCallEvent, ToolCallsEvent, ToolResultEvent)


def _plain(value: Any) -> Any:
    """A JSON-able, order-stable view of a sampling value (``omit``/``NOT_GIVEN`` sentinels → None)."""
    if value is None or type(value).__name__ in ("Omit", "NotGiven", "_Omit"):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    try:
        return json.loads(json.dumps(value, sort_keys=True, default=str))
    except (TypeError, ValueError):
        return repr(value)


def _tool_schema(tool: Any) -> Any:
    fn = getattr(tool, "function", None)
    if fn is None:
        return repr(tool)
    return {
        "name": fn.name,
        "description": getattr(fn, "description", None),
        "parameters": _plain(getattr(fn, "parameters", None)),
    }


def canonical_request(
    config: Any,
    messages: Sequence[BaseEvent],
    prompt: Sequence[str] = (),
    tools: Iterable[Any] = (),
    response_schema: Any = None,
    tenant: str = "default",
) -> dict[str, Any]:
    """The request as a plain dict with nothing volatile in it (what :func:`request_key` hashes)."""
    sampling = {k: _plain(getattr(config, k, None)) for k in _SAMPLING}
    schema = getattr(response_schema, "json_schema", None) if response_schema is not None else None
    return {
        "tenant": tenant,
        "provider": str(getattr(config, "provider", "")),
        "model": str(getattr(config, "model", "")),
        "system": list(prompt),
        "messages": [render_for_prompt(m) for m in messages if is_conversational(m) and not isinstance(m, _ECHOES)],
        "tools": sorted((_tool_schema(t) for t in tools), key=lambda t: json.dumps(t, sort_keys=True, default=str)),
        "response_schema": _plain(schema),
        "sampling": {k: v for k, v in sampling.items() if v is not None},
    }


def request_key(canonical: dict[str, Any]) -> str:
    """``<tenant>:<model>:<sha256>`` — prefix-invalidatable by tenant or tenant+model."""
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return f"{canonical['tenant']}:{canonical['model']}:{hashlib.sha256(blob.encode()).hexdigest()}"


@dataclass
class CacheStats:
    """Counters for one cache; ``skipped`` counts responses not stored, by reason.

    ``saved_usd`` sums the hits whose model has a price; ``unpriced_hits`` counts the others (their saving
    is unknown, not $0).
    """

    hits: int = 0
    misses: int = 0
    stores: int = 0
    saved_tokens: int = 0
    saved_usd: float = 0.0
    unpriced_hits: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 before any lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class ResponseCache:
    """A response store with TTL, tags and statistics over one backend (memory, disk or Redis).

    Thread/asyncio safe: counters are locked; the backend is safe on its own.
    """

    def __init__(
        self,
        backend: CacheBackend | None = None,
        *,
        ttl_s: float | None = 3600.0,
        share_across_tenants: bool = False,
    ) -> None:
        if ttl_s is not None and not ttl_s > 0:
            raise ConfigError(f"ttl_s must be > 0 seconds or None, got {ttl_s!r}")
        self.backend = backend if backend is not None else MemoryBackend()
        self.ttl_s = ttl_s
        self.share_across_tenants = share_across_tenants
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def wrap(self, config: ModelConfig, *, tenant: str = "default", safe_tools: Iterable[str] = ()) -> CachedModel:
        """Return ``config`` wrapped so every model call goes through this cache."""
        return CachedModel(config, self, tenant=tenant, safe_tools=safe_tools)

    def _count(self, name: str, response: ModelResponse | None = None) -> None:
        with self._lock:
            if name in ("hits", "misses", "stores"):
                setattr(self.stats, name, getattr(self.stats, name) + 1)
            else:
                self.stats.skipped[name] = self.stats.skipped.get(name, 0) + 1
            if name == "hits" and response is not None and response.usage:
                from agentops.usage import cost_usd

                self.stats.saved_tokens += int(response.usage.total_tokens or 0)
                saved = cost_usd(response.usage, response.model)
                if saved is None:
                    self.stats.unpriced_hits += 1
                else:
                    self.stats.saved_usd += saved

    def invalidate_prefix(self, prefix: str) -> int:
        """Drop entries whose key starts with ``prefix`` (``"acme:"`` = one tenant)."""
        return self.backend.invalidate_prefix(prefix)

    def invalidate_tag(self, tag: str) -> int:
        """Drop entries stored with ``tag`` (every entry is tagged ``model:<name>``)."""
        return self.backend.invalidate_tag(tag)

    def stats_frame(self) -> Any:
        """Hits, misses, stores, hit rate and savings as a one-row pandas DataFrame."""
        import pandas as pd

        s = self.stats
        return pd.DataFrame(
            [
                {
                    "hits": s.hits,
                    "misses": s.misses,
                    "stores": s.stores,
                    "hit_rate": round(s.hit_rate, 3),
                    "saved_tokens": s.saved_tokens,
                    "saved_usd": round(s.saved_usd, 6),
                    "unpriced_hits": s.unpriced_hits,
                    "not_stored": sum(s.skipped.values()),
                }
            ]
        )


def _why_not_store(resp: ModelResponse, messages: Sequence[BaseEvent], safe_tools: frozenset[str]) -> str | None:
    if resp.finish_reason not in _CACHEABLE_FINISH:
        return f"finish_reason={resp.finish_reason}"
    text = resp.message.content if resp.message is not None else None
    calls = list(resp.tool_calls.calls) if resp.tool_calls else []
    if not text and not calls:
        return "empty"
    if any(c.name not in safe_tools for c in calls):
        return "side-effect tool call"
    from agentops.guardrails import scan

    last_user = next((m for m in reversed(messages) if isinstance(m, ModelRequest)), None)
    user_text = " ".join(p.content for p in last_user.parts if isinstance(p, TextInput)) if last_user else ""
    for t in (text or "", user_text, *(c.arguments for c in calls)):
        if scan(t) or any(tag in t for tag in ("[EMAIL_ADDRESS]", "[SECRET]", "[PHONE_NUMBER]", "[CREDIT_CARD]")):
            return "guardrail finding"
    return None


class CachedModel(ModelConfig):
    """An AG2 ``ModelConfig`` that answers from a :class:`ResponseCache` before calling ``inner``.

    Example::

        cache = ResponseCache(RedisBackend(redis.Redis.from_url(url)), ttl_s=600)
        agent = ag2.Agent("support", "Be brief.", config=cache.wrap(model_config("offline")))
    """

    def __init__(
        self, inner: ModelConfig, cache: ResponseCache, *, tenant: str = "default", safe_tools: Iterable[str] = ()
    ) -> None:
        if not isinstance(tenant, str) or not tenant or ":" in tenant:
            raise ConfigError(f"tenant must be a non-empty str without ':', got {tenant!r}")
        self.inner, self.cache, self.tenant = inner, cache, tenant
        self.safe_tools = frozenset(safe_tools)

    @property
    def provider(self) -> Any:
        return self.inner.provider

    @property
    def model(self) -> str:
        return self.inner.model

    def copy(self, **overrides: Any) -> CachedModel:
        """Same cache around a copy of the inner config."""
        if not overrides:
            return self
        return CachedModel(self.inner.copy(**overrides), self.cache, tenant=self.tenant, safe_tools=self.safe_tools)

    def create(self) -> LLMClient:
        return _CachedClient(self, self.inner.create())

    def __getattr__(self, name: str) -> Any:  # sampling params etc. read through to the inner config
        if name.startswith("_") or name in ("inner", "cache", "tenant", "safe_tools"):
            raise AttributeError(name)
        return getattr(self.inner, name)


class _CachedClient(LLMClient):
    def __init__(self, owner: CachedModel, client: LLMClient) -> None:
        self.owner, self.client = owner, client

    async def __call__(
        self,
        messages: Sequence[BaseEvent],
        context: Any,
        *,
        tools: Iterable[Any] = (),
        response_schema: Any = None,
        serializer: Any = None,
    ) -> ModelResponse:
        owner, cache = self.owner, self.owner.cache
        tools = list(tools)
        tenant = "*" if cache.share_across_tenants else owner.tenant
        canon = canonical_request(
            owner.inner, messages, getattr(context, "prompt", None) or [], tools, response_schema, tenant
        )
        key = request_key(canon)
        raw = cache.backend.get(key)
        if raw is not None:
            resp = ModelResponse.from_dict(json.loads(raw))
            cache._count("hits", resp)
            if resp.message is not None and hasattr(context, "send"):
                await context.send(resp.message)
            return ModelResponse(
                resp.message,
                tool_calls=resp.tool_calls,
                usage=Usage(),
                model=resp.model,
                provider=resp.provider,
                finish_reason=resp.finish_reason,
            )
        cache._count("misses")
        resp = await self.client(messages, context, tools=tools, response_schema=response_schema, serializer=serializer)
        why = _why_not_store(resp, messages, owner.safe_tools)
        if why is not None:
            cache._count(why)
            return resp
        cache.backend.set(
            key,
            json.dumps(resp.to_dict(), default=str),
            ttl_s=cache.ttl_s,
            tags=(f"model:{resp.model or owner.model}", f"tenant:{tenant}"),
        )
        cache._count("stores")
        return resp
