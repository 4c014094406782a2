"""Extra AG2 middleware for the agents a runner builds (role graphs, workflows, eval targets).

A runner that creates ``ag2.Agent`` objects on the caller's behalf accepts one
:data:`MiddlewareSpec`: a list of middleware factories for every agent, or a function of the agent's
name returning that agent's list (``Telemetry.middleware`` has this shape). :func:`extra_middleware`
resolves it for one agent; runners place the result outermost so it sees the whole turn.

>>> extra_middleware(None, "billing")
[]
>>> extra_middleware(lambda name: [f"mw-for-{name}"], "billing")
['mw-for-billing']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError

__all__ = ["MiddlewareSpec", "extra_middleware"]

MiddlewareSpec = Sequence[Any] | Callable[[str], Sequence[Any]]
"""Extra AG2 middleware for the agents a graph or workflow builds: one list for every agent, or a
function of the role/stage name returning that agent's list (e.g. ``telemetry.middleware``)."""


def extra_middleware(spec: MiddlewareSpec | None, name: str) -> list[Any]:
    """Resolve a :data:`MiddlewareSpec` for the agent called ``name``.

    Raises:
        ConfigError: the spec is neither a list/tuple of factories nor a function of the name.
    """
    if spec is None:
        return []
    if isinstance(spec, (list, tuple)):
        return list(spec)
    if callable(spec):
        return list(spec(name))
    raise ConfigError(
        f"middleware must be a list of AG2 middleware factories or a function role -> list; got {type(spec).__name__}"
    )
