"""One exception hierarchy for the whole package.

Every error the helpers raise on bad input is an :class:`AgentOpsError` whose message says what was
wrong and how to fix it, so a reader never has to dig through a stack trace from inside AG2.
"""

from __future__ import annotations

__all__ = [
    "AgentOpsError",
    "ChapterFailed",
    "ConfigError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "ParameterError",
    "UnknownModelPrice",
]


class AgentOpsError(Exception):
    """Base class of every error raised by ``agentops``."""


class ConfigError(AgentOpsError, ValueError):
    """A configuration value is invalid; the message names the value and the accepted ones."""


class MissingCredentialsError(ConfigError):
    """A real provider was selected but the environment variable holding its key is not set."""

    def __init__(self, backend: str, variable: str) -> None:
        self.backend = backend
        self.variable = variable
        super().__init__(
            f"backend {backend!r} needs an API key: set the environment variable {variable} "
            f"(for example `export {variable}=...`), or use llm_backend='offline' to run without one"
        )


class MissingDependencyError(AgentOpsError, ImportError):
    """An optional extra is needed for the requested feature."""


class ParameterError(ConfigError):
    """A notebook parameter is unknown or has the wrong type; nothing was executed."""


class ChapterFailed(AgentOpsError):
    """A chapter raised while executing; names the chapter and the failing cell."""

    def __init__(self, chapter: str, cell: int | None, error: str) -> None:
        self.chapter = chapter
        self.cell = cell
        self.error = error
        where = f"cell {cell}" if cell is not None else "before any cell ran"
        super().__init__(f"chapter {chapter!r} failed at {where}: {error}")


class UnknownModelPrice(ConfigError, LookupError):
    """No price is known for a model; register one with ``agentops.pricing.register_price``."""


class EvaluationError(AgentOpsError):
    """An evaluation suite, judge or gate failed."""
