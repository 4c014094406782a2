"""Usage and cost: one pricing policy for every module (tokens kept; an unpriced model costs ``None``)."""

from __future__ import annotations

import threading
import warnings
from typing import Any

from agentops.errors import UnknownModelPrice
from agentops.pricing import cost as _cost

__all__ = ["UnpricedModelWarning", "cost_usd"]


class UnpricedModelWarning(UserWarning):
    """A model has no known price; its calls are recorded with cost ``None``."""


_warned: set[tuple[str, str | None]] = set()
_lock = threading.Lock()


def cost_usd(usage: Any, model: str, provider: str | None = None) -> float | None:
    """USD cost of ``usage`` on ``model``, or ``None`` (with one warning per model) when it has no price."""
    try:
        return _cost(usage, model, provider)
    except UnknownModelPrice as exc:
        with _lock:
            first = (model, provider) not in _warned
            _warned.add((model, provider))
        if first:
            warnings.warn(f"{exc}; its cost is reported as unpriced", UnpricedModelWarning, stacklevel=2)
        return None
