"""What a model call cost in USD — AG2 v1 reports tokens only, so cost is ours.

Prices come from three places, first match wins:

1. prices you register (``register_price("my-finetune", input_per_1k=..., output_per_1k=...)``);
2. the offline models' nominal prices (:data:`OFFLINE_PRICES`, dated :data:`PRICES_AS_OF`), so the
   offline chapters show realistic-looking spend;
3. ``genai-prices``, a maintained price database that ships its data and works offline.

A price is looked up once per (model, provider) and cached, so :func:`cost` is plain arithmetic on the
hot path (budgets call it for every reservation). An unknown model is an error, never a silent $0.

Example::

    >>> from ag2.events import Usage
    >>> round(cost(Usage(prompt_tokens=1000, completion_tokens=500), "offline-1"), 6)
    0.00125
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import metadata
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError, UnknownModelPrice

__all__ = [
    "OFFLINE_PRICES",
    "PRICES_AS_OF",
    "Price",
    "cost",
    "price",
    "price_table",
    "register_price",
    "usage_frame",
]

PRICES_AS_OF = "2026-11-01"


@dataclass(frozen=True)
class Price:
    """USD per 1,000 tokens for one model."""

    model: str
    input_per_1k: float
    output_per_1k: float
    cache_read_per_1k: float | None = None
    source: str = "registered"
    as_of: str = PRICES_AS_OF

    def __post_init__(self) -> None:
        for name in ("input_per_1k", "output_per_1k", "cache_read_per_1k"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise ConfigError(f"price {name} for {self.model!r} must be a number ≥ 0, got {value!r}")

    def cost(self, prompt_tokens: float, completion_tokens: float, cache_read_tokens: float = 0.0) -> float:
        """USD for the given token counts (cached input billed at the cache-read rate if known)."""
        cached = min(cache_read_tokens or 0.0, prompt_tokens or 0.0) if self.cache_read_per_1k is not None else 0.0
        fresh = (prompt_tokens or 0.0) - cached
        return (
            fresh * self.input_per_1k
            + cached * (self.cache_read_per_1k or 0.0)
            + (completion_tokens or 0.0) * self.output_per_1k
        ) / 1000.0


OFFLINE_PRICES: dict[str, Price] = {
    p.model: p
    for p in (
        Price("offline-mini", 0.00015, 0.0006, source="agentops nominal (offline)"),
        Price("offline-1", 0.0005, 0.0015, source="agentops nominal (offline)"),
        Price("offline-large", 0.0025, 0.01, source="agentops nominal (offline)"),
    )
}

_registered: dict[str, Price] = {}
_lock = threading.Lock()


def register_price(
    model: str,
    *,
    input_per_1k: float,
    output_per_1k: float,
    cache_read_per_1k: float | None = None,
    as_of: str = PRICES_AS_OF,
) -> Price:
    """Set (or override) the price of a model, e.g. a local Ollama model at 0.0."""
    p = Price(model, float(input_per_1k), float(output_per_1k), cache_read_per_1k, "registered", as_of)
    with _lock:
        _registered[model] = p
        _lookup.cache_clear()
    return p


def _genai_version() -> str:
    try:
        return metadata.version("genai-prices")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


@lru_cache(maxsize=1024)
def _lookup(model: str, provider: str | None) -> Price:
    if model in _registered:
        return _registered[model]
    if model in OFFLINE_PRICES:
        return OFFLINE_PRICES[model]
    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    try:
        calc = calc_price(GUsage(input_tokens=1000, output_tokens=1000), model_ref=model, provider_id=provider)
    except LookupError:
        if provider is not None:  # a label genai-prices does not know ("compatible", "vllm"): ask by model
            return _lookup(model, None)
        raise UnknownModelPrice(
            f"no price known for model {model!r}"
            + (f" (provider {provider!r})" if provider else "")
            + "; register one with agentops.pricing.register_price("
            + f"{model!r}, input_per_1k=..., output_per_1k=...)"
        ) from None
    mp = calc.model_price
    cache = getattr(mp, "cache_read_mtok", None)
    return Price(
        model,
        float(calc.input_price),  # priced on 1K tokens: below any long-context tier
        float(calc.output_price),
        float(cache) / 1000.0 if isinstance(cache, (int, float, Decimal)) else None,
        f"genai-prices {_genai_version()} ({calc.provider.id})",
        f"genai-prices {_genai_version()}",
    )


def price(model: str, provider: str | None = None) -> Price:
    """The :class:`Price` of a model; raises :class:`UnknownModelPrice` naming the fix if none is known."""
    if not model or not isinstance(model, str):
        raise ConfigError(f"model must be a non-empty string, got {model!r}")
    prov = str(getattr(provider, "value", provider) or "")  # ModelProvider.OPENAI → "openai"
    return _lookup(model, prov if prov not in ("", "offline", "replay") else None)


def cost(usage: Any, model: str, provider: str | None = None) -> float:
    """USD cost of an AG2 ``Usage`` (or any object with ``prompt_tokens``/``completion_tokens``)."""
    p = price(model, provider)
    return p.cost(
        getattr(usage, "prompt_tokens", 0) or 0.0,
        getattr(usage, "completion_tokens", 0) or 0.0,
        getattr(usage, "cache_read_input_tokens", 0) or 0.0,
    )


COMMON_MODELS: tuple[tuple[str, str | None], ...] = (
    ("offline-mini", None),
    ("offline-1", None),
    ("offline-large", None),
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-4.1-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("gemini-2.5-flash", "google"),
)


def price_table(models: tuple[tuple[str, str | None], ...] = COMMON_MODELS) -> Any:
    """A pandas DataFrame of prices (USD per 1K tokens) with their source and date."""
    import pandas as pd

    rows = []
    for model, provider in models:
        p = price(model, provider)
        rows.append(
            {
                "model": model,
                "input $/1K": p.input_per_1k,
                "output $/1K": p.output_per_1k,
                "source": p.source,
                "as of": p.as_of,
            }
        )
    return pd.DataFrame(rows).set_index("model")


def usage_frame(report: Any) -> Any:
    """One row per usage record of an AG2 ``UsageReport`` (``await reply.usage()``), with USD cost.

    Columns: kind, model, provider, input_tokens, output_tokens, total_tokens, cost_usd. A model with
    no known price keeps its tokens and shows ``cost_usd`` as ``None`` (see :mod:`agentops.usage`).
    """
    import pandas as pd

    from agentops.usage import cost_usd

    rows = []
    for rec in getattr(report, "records", ()):
        u = rec.usage
        rows.append(
            {
                "kind": rec.kind,
                "model": rec.model,
                "provider": str(getattr(rec.provider, "value", rec.provider) or ""),
                "input_tokens": int(u.prompt_tokens or 0),
                "output_tokens": int(u.completion_tokens or 0),
                "total_tokens": int(u.total_tokens or 0),
                "cost_usd": cost_usd(u, rec.model, rec.provider),
            }
        )
    columns = ["kind", "model", "provider", "input_tokens", "output_tokens", "total_tokens", "cost_usd"]
    return pd.DataFrame(rows, columns=columns)
