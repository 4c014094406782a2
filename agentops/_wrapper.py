"""What an AG2 ``ModelConfig`` that wraps other model configs needs: the request text, lazy clients.

:class:`~agentops.routing.RoutedModel` (one tier per request) and
:class:`~agentops.resilience.FallbackModel` (one model after another) are both AG2 ``ModelConfig``
objects over several configs, in the shape of pydantic-ai's ``models/wrapper.py``. Each decides from
the last request's text and, per ``ask``, creates a wrapped model's client only when it is first used.
Both live here once; telemetry reads the request text the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ag2.config import LLMClient
from ag2.events import BaseEvent, ModelRequest, TextInput

from agentops.errors import ConfigError

__all__: list[str] = []


def request_text(event: Any) -> str:
    """The text parts of a ``ModelRequest``, joined by spaces (``""`` for any other event)."""
    if isinstance(event, ModelRequest):
        return " ".join(p.content for p in event.parts if isinstance(p, TextInput))
    return ""


def last_request_text(messages: Sequence[BaseEvent]) -> str:
    """The text of the latest ``ModelRequest`` in ``messages`` (``""`` when there is none)."""
    for m in reversed(messages):
        if isinstance(m, ModelRequest):
            return request_text(m)
    return ""


def no_overrides(kind: str, overrides: dict[str, Any], fix: str) -> None:
    """``copy(**overrides)`` of a wrapper: the wrapper is shared, so any override is an error naming ``fix``."""
    if overrides:
        raise ConfigError(f"{kind} takes no overrides ({sorted(overrides)}); {fix}")


class LazyClients(LLMClient):
    """Per-ask client of a wrapper: the client of wrapped config ``i`` is created on first use."""

    def __init__(self, configs: Sequence[Any]) -> None:
        self._configs = configs
        self._clients: dict[int, LLMClient] = {}

    def _client(self, i: int) -> LLMClient:
        client = self._clients.get(i)
        if client is None:
            client = self._clients[i] = self._configs[i].create()
        return client
